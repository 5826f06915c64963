#!/usr/bin/env bash
# Reference RabbitMQ launcher for Warren's integration tests.
#
# Usage:
#   scripts/rabbitmq-ref.sh start PORT [--management MGMT_PORT] [--prometheus PROM_PORT]
#                                      [--stats-interval MS]
#   scripts/rabbitmq-ref.sh stop PORT
#   scripts/rabbitmq-ref.sh kill PORT
#   scripts/rabbitmq-ref.sh restart PORT
#   scripts/rabbitmq-ref.sh status PORT
#   scripts/rabbitmq-ref.sh ctl PORT ARGS...
#
# `start` runs a private RabbitMQ node (Debian's rabbitmq-server package) as
# the `rabbitmq` user, with its own temporary directory holding HOME, the
# mnesia/data directory, logs and a generated rabbitmq.conf. Nothing under
# /etc or /var/lib/rabbitmq is used. The node:
#   * listens for AMQP on 127.0.0.1:PORT only (user guest/guest),
#   * is named rabbit-ref-PORT@localhost,
#   * uses Erlang distribution port PORT+20000 and a private epmd on
#     port PORT+30000 (both bound to 127.0.0.1), started by this script,
#   * has the bundled consistent-hash exchange plugin enabled (Warren has the
#     x-consistent-hash exchange type built in; the differential tests compare
#     its placement with the plugin's),
#   * optionally runs the management plugin on 127.0.0.1:MGMT_PORT,
#   * optionally runs the rabbitmq_prometheus plugin on 127.0.0.1:PROM_PORT
#     (/metrics, /metrics/per-object, /metrics/detailed),
#   * optionally emits statistics every MS milliseconds
#     (collect_statistics_interval; RabbitMQ's default is 5000) and, with the
#     management plugin, has its collectors sample every ceil(MS/1000) seconds
#     (sample_retention_policies; default 5): the management API shows an
#     object, or its counters, only after they went through both, so tests of
#     that API shorten them.
# The script waits (with a deadline) until the node answers the AMQP protocol
# header with connection.start, then records the PIDs and temp dir in a state
# file (${RABBITMQ_REF_STATE_DIR:-/tmp}/rabbitmq-ref-PORT.state).
#
# `ctl` runs `rabbitmqctl -n NODE ARGS...` against the node started on PORT,
# with the node's environment (HOME holding its Erlang cookie, its epmd port),
# as the `rabbitmq` user; its output and exit status are rabbitmqctl's.
#
# `kill` crashes the node (SIGKILL to its process group and VM, no shutdown) and keeps its
# directory; `restart` starts it again on that directory, as after a power cut (the
# exactly-once crash test drives RabbitMQ with these two).
#
# `stop` terminates exactly the processes recorded in that state file and
# removes the temp dir. Both commands are safe to repeat.
#
# Environment knobs:
#   RABBITMQ_REF_STATE_DIR   where state files live (default /tmp)
#   RABBITMQ_REF_TIMEOUT     start deadline in seconds (default 90)

set -euo pipefail

RMQ_USER=rabbitmq
RMQ_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
RMQ_CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
STATE_DIR="${RABBITMQ_REF_STATE_DIR:-/tmp}"
START_TIMEOUT="${RABBITMQ_REF_TIMEOUT:-90}"

log() { printf 'rabbitmq-ref: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	cat >&2 <<EOF
usage: $0 start PORT [--management MGMT_PORT] [--prometheus PROM_PORT] [--stats-interval MS]
       $0 stop PORT
       $0 kill PORT
       $0 restart PORT
       $0 status PORT
       $0 ctl PORT ARGS...
EOF
	exit 2
}

check_port() {
	if ! [[ "$1" =~ ^[0-9]+$ ]] || (("$1" < 1 || "$1" > 35535)); then
		die "invalid port '$1' (must be 1..35535 so that PORT+30000 is valid)"
	fi
}

state_file() { printf '%s/rabbitmq-ref-%s.state\n' "$STATE_DIR" "$1"; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

ensure_installed() {
	if [[ -x "$RMQ_SERVER" ]] && id -u "$RMQ_USER" >/dev/null 2>&1; then
		return
	fi
	[[ "$(id -u)" -eq 0 ]] || die "rabbitmq-server is not installed and we are not root"
	log "installing rabbitmq-server via apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends rabbitmq-server >&2
	[[ -x "$RMQ_SERVER" ]] || die "rabbitmq-server installation did not provide $RMQ_SERVER"
	# The package may have started a system-wide node; it uses the default
	# ports/epmd, which do not collide with ours, so it is left alone.
}

# Returns 0 if something on 127.0.0.1:$1 answers the AMQP 0-9-1 header with a
# method frame on channel 0 (connection.start).
amqp_answers() {
	local port=$1 reply
	# shellcheck disable=SC2016 # $0 is expanded by the inner bash
	reply=$(timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		printf "AMQP\x00\x00\x09\x01" >&3
		head -c 7 <&3 | od -An -tx1 | tr -d " \n"
	' "$port" 2>/dev/null) || return 1
	# frame type 1 (method), channel 0
	[[ "$reply" == 010000* ]]
}

port_in_use() {
	# shellcheck disable=SC2016 # $0 is expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# Kill a PID (TERM, then KILL after a deadline). Also signals its process group
# if the PID is a group leader (we start processes with setsid).
kill_pid() {
	local pid=$1 deadline
	pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 30))
	while pid_alive "$pid" && ((SECONDS < deadline)); do
		sleep 0.2
	done
	if pid_alive "$pid"; then
		log "pid $pid did not exit after SIGTERM; sending SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
}

do_stop() {
	local port=$1 sf
	sf=$(state_file "$port")
	if [[ ! -f "$sf" ]]; then
		log "no instance recorded for port $port"
		return 0
	fi
	local PID="" BEAM_PID="" EPMD_PID="" TMP_DIR=""
	# shellcheck disable=SC1090
	source "$sf"
	log "stopping instance on port $port (pid ${PID:-?}, beam ${BEAM_PID:-?})"
	kill_pid "${PID:-}"
	# The wrapper normally takes the VM down with it; make sure.
	kill_pid "${BEAM_PID:-}"
	# Leftover helpers (erl_child_setup, inet_gethost) in the node's group.
	if [[ -n "${PID:-}" ]]; then
		kill -KILL -- "-$PID" 2>/dev/null || true
	fi
	if [[ -n "${EPMD_PID:-}" ]]; then
		kill_pid "$EPMD_PID"
	fi
	if [[ -n "${TMP_DIR:-}" && -d "$TMP_DIR" && "$TMP_DIR" == */rabbitmq-ref-"$port".* ]]; then
		rm -rf -- "$TMP_DIR"
	fi
	rm -f -- "$sf"
	log "stopped"
}

# Starts a private epmd bound to loopback for the node in $1 on port $2; prints its PID.
start_epmd() {
	local tmp=$1 epmd_port=$2
	setsid env -i PATH="$PATH" HOME="$tmp/home" ERL_EPMD_ADDRESS=127.0.0.1 \
		setpriv --reuid="$RMQ_USER" --regid="$RMQ_USER" --init-groups -- \
		epmd -port "$epmd_port" >>"$tmp/log/epmd.log" 2>&1 </dev/null &
	echo $!
}

# Starts the node of port $1 on its directory $2 (name $3), records its PIDs in the state
# file $4 (appended: the last assignment wins when the file is sourced), and waits until it
# answers AMQP. Returns 1, after printing the end of its log, if it does not.
launch_node() {
	local port=$1 tmp=$2 node=$3 sf=$4
	local dist_port=$((port + 20000)) epmd_port=$((port + 30000))
	local -a envv=(
		PATH="$PATH"
		LANG=C.UTF-8
		LC_ALL=C.UTF-8
		HOME="$tmp/home"
		ERL_EPMD_PORT="$epmd_port"
		ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_CONF_ENV_FILE="$tmp/rabbitmq-env.conf"
		RABBITMQ_CONFIG_FILE="$tmp/rabbitmq.conf"
		RABBITMQ_ADVANCED_CONFIG_FILE="$tmp/advanced.config"
		RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/enabled_plugins"
		RABBITMQ_PLUGINS_EXPAND_DIR="$tmp/plugins-expand"
		RABBITMQ_MNESIA_BASE="$tmp/mnesia"
		RABBITMQ_LOG_BASE="$tmp/log"
		RABBITMQ_PID_FILE="$tmp/rabbit.pid"
		RABBITMQ_NODENAME="$node"
		RABBITMQ_USE_LONGNAME=false
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$port"
		RABBITMQ_DIST_PORT="$dist_port"
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
	)

	log "starting $node on 127.0.0.1:$port (dist $dist_port, epmd $epmd_port, dir $tmp)"
	rm -f -- "$tmp/rabbit.pid"
	(
		cd "$tmp"
		exec setsid env -i "${envv[@]}" \
			setpriv --reuid="$RMQ_USER" --regid="$RMQ_USER" --init-groups -- \
			"$RMQ_SERVER" >>"$tmp/log/startup.log" 2>&1 </dev/null
	) &
	local pid=$!
	printf 'PID=%q\n' "$pid" >>"$sf"

	local deadline=$((SECONDS + START_TIMEOUT))
	until amqp_answers "$port"; do
		if ! pid_alive "$pid"; then
			log "broker exited during startup; last log lines:"
			tail -n 40 "$tmp/log/startup.log" >&2 || true
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "broker did not answer AMQP within ${START_TIMEOUT}s; last log lines:"
			tail -n 40 "$tmp/log/startup.log" >&2 || true
			return 1
		fi
		sleep 0.25
	done

	local beam_pid=""
	[[ -f "$tmp/rabbit.pid" ]] && beam_pid=$(tr -dc '0-9' <"$tmp/rabbit.pid")
	printf 'BEAM_PID=%q\n' "$beam_pid" >>"$sf"
}

# SIGKILL to the node on port $1 (its process group and its VM), as a crash: no shutdown, the
# data directory stays for `restart`. Its epmd keeps running.
do_kill() {
	local port=$1 sf
	sf=$(state_file "$port")
	[[ -f "$sf" ]] || die "no instance recorded for port $port"
	local PID="" BEAM_PID=""
	# shellcheck disable=SC1090
	source "$sf"
	log "killing (SIGKILL) the node on port $port (pid ${PID:-?}, beam ${BEAM_PID:-?}); its data stays"
	if [[ -n "${PID:-}" ]]; then
		kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
	fi
	if [[ -n "${BEAM_PID:-}" ]]; then
		kill -KILL "$BEAM_PID" 2>/dev/null || true
	fi
	local deadline=$((SECONDS + 30))
	while pid_alive "${PID:-}" || pid_alive "${BEAM_PID:-}"; do
		((SECONDS < deadline)) || die "the node on port $port survived SIGKILL for 30s"
		sleep 0.05
	done
}

# Starts the node of port $1 again on its data directory, after `kill`.
do_restart() {
	local port=$1 sf
	sf=$(state_file "$port")
	[[ -f "$sf" ]] || die "no instance recorded for port $port"
	local PID="" BEAM_PID="" EPMD_PID="" TMP_DIR="" NODE=""
	# shellcheck disable=SC1090
	source "$sf"
	[[ -n "$NODE" && -d "$TMP_DIR" ]] || die "the instance on port $port never finished starting"
	if pid_alive "$PID" || pid_alive "$BEAM_PID"; then
		die "the node on port $port is still running (kill it first)"
	fi
	if ! pid_alive "$EPMD_PID"; then
		EPMD_PID=$(start_epmd "$TMP_DIR" "$((port + 30000))")
		printf 'EPMD_PID=%q\n' "$EPMD_PID" >>"$sf"
	fi
	launch_node "$port" "$TMP_DIR" "$NODE" "$sf" || exit 1
	log "ready again: amqp://guest:guest@127.0.0.1:${port}/"
}

do_start() {
	local port=$1 mgmt_port=${2:-} prom_port=${3:-} stats_interval=${4:-}
	local sf epmd_port node tmp
	sf=$(state_file "$port")
	mkdir -p "$STATE_DIR"

	ensure_installed

	# A previous instance on this port (alive or stale) is torn down first so
	# that every start gives a fresh broker.
	if [[ -f "$sf" ]]; then
		log "found previous state for port $port; stopping it first"
		do_stop "$port"
	fi
	if port_in_use "$port"; then
		die "port $port is already in use by something this script did not start"
	fi

	epmd_port=$((port + 30000))
	node="rabbit-ref-${port}@localhost"

	tmp=$(mktemp -d "${TMPDIR:-/tmp}/rabbitmq-ref-${port}.XXXXXX")
	mkdir -p "$tmp/home" "$tmp/mnesia" "$tmp/log" "$tmp/plugins-expand"
	: >"$tmp/rabbitmq-env.conf"
	{
		echo "listeners.tcp.1 = 127.0.0.1:${port}"
		echo "default_user = guest"
		echo "default_pass = guest"
		echo "default_vhost = /"
		echo "loopback_users.guest = true"
		echo "disk_free_limit.absolute = 1MB"
		echo "log.file.level = info"
		echo "log.console = false"
		if [[ -n "$mgmt_port" ]]; then
			echo "management.tcp.ip = 127.0.0.1"
			echo "management.tcp.port = ${mgmt_port}"
		fi
		if [[ -n "$prom_port" ]]; then
			echo "prometheus.tcp.ip = 127.0.0.1"
			echo "prometheus.tcp.port = ${prom_port}"
		fi
		if [[ -n "$stats_interval" ]]; then
			echo "collect_statistics_interval = ${stats_interval}"
			if [[ -n "$mgmt_port" ]]; then
				# Whole seconds, at least one.
				local every=$(((stats_interval + 999) / 1000))
				((every >= 1)) || every=1
				echo "management.sample_retention_policies.global.minute = ${every}"
				echo "management.sample_retention_policies.basic.minute = ${every}"
				echo "management.sample_retention_policies.detailed.10 = ${every}"
			fi
		fi
	} >"$tmp/rabbitmq.conf"
	# Plugins enabled offline: the node reads this file at boot.
	local plugins="rabbitmq_consistent_hash_exchange"
	if [[ -n "$mgmt_port" ]]; then
		plugins="rabbitmq_management,$plugins"
	fi
	if [[ -n "$prom_port" ]]; then
		plugins="rabbitmq_prometheus,$plugins"
	fi
	echo "[$plugins]." >"$tmp/enabled_plugins"
	chown -R "$RMQ_USER:$RMQ_USER" "$tmp"
	chmod 0750 "$tmp"

	# Record the temp dir right away so that `stop` can clean up even if the
	# start fails half-way.
	printf 'TMP_DIR=%q\n' "$tmp" >"$sf"

	local epmd_pid
	epmd_pid=$(start_epmd "$tmp" "$epmd_port")
	printf 'EPMD_PID=%q\n' "$epmd_pid" >>"$sf"

	if ! launch_node "$port" "$tmp" "$node" "$sf"; then
		do_stop "$port"
		exit 1
	fi
	printf 'PORT=%q\nMGMT_PORT=%q\nPROM_PORT=%q\nNODE=%q\n' "$port" "$mgmt_port" "$prom_port" "$node" >>"$sf"

	if [[ -n "$mgmt_port" ]]; then
		deadline=$((SECONDS + START_TIMEOUT))
		until port_in_use "$mgmt_port"; do
			((SECONDS < deadline)) || die "management plugin did not listen on $mgmt_port"
			sleep 0.25
		done
	fi
	if [[ -n "$prom_port" ]]; then
		deadline=$((SECONDS + START_TIMEOUT))
		until port_in_use "$prom_port"; do
			((SECONDS < deadline)) || die "prometheus plugin did not listen on $prom_port"
			sleep 0.25
		done
	fi
	log "ready: amqp://guest:guest@127.0.0.1:${port}/ (state $sf)"
}

do_status() {
	local port=$1 sf
	sf=$(state_file "$port")
	[[ -f "$sf" ]] || {
		echo "not running"
		return 1
	}
	local PID=""
	# shellcheck disable=SC1090
	source "$sf"
	if pid_alive "$PID" && amqp_answers "$port"; then
		echo "running (pid $PID)"
	else
		echo "not running (stale state)"
		return 1
	fi
}

do_ctl() {
	local port=$1 sf
	shift
	sf=$(state_file "$port")
	[[ -f "$sf" ]] || die "no instance recorded for port $port"
	local TMP_DIR="" NODE=""
	# shellcheck disable=SC1090
	source "$sf"
	[[ -n "$NODE" ]] || die "the instance on port $port has not finished starting"
	local -a envv=(
		PATH="$PATH"
		LANG=C.UTF-8
		LC_ALL=C.UTF-8
		HOME="$TMP_DIR/home"
		ERL_EPMD_PORT="$((port + 30000))"
		ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_CONF_ENV_FILE="$TMP_DIR/rabbitmq-env.conf"
		RABBITMQ_USE_LONGNAME=false
	)
	if [[ "$(id -u)" -eq 0 ]]; then
		exec env -i "${envv[@]}" setpriv --reuid="$RMQ_USER" --regid="$RMQ_USER" --init-groups -- \
			"$RMQ_CTL" -n "$NODE" "$@"
	fi
	exec env -i "${envv[@]}" "$RMQ_CTL" -n "$NODE" "$@"
}

[[ $# -ge 2 ]] || usage
cmd=$1
port=$2
shift 2
check_port "$port"

case "$cmd" in
start)
	mgmt=""
	prom=""
	stats=""
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--management)
			[[ $# -ge 2 ]] || usage
			mgmt=$2
			check_port "$mgmt"
			shift 2
			;;
		--prometheus)
			[[ $# -ge 2 ]] || usage
			prom=$2
			check_port "$prom"
			shift 2
			;;
		--stats-interval)
			[[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage
			stats=$2
			shift 2
			;;
		*) usage ;;
		esac
	done
	[[ "$(id -u)" -eq 0 ]] || die "must be run as root (it runs the broker as the $RMQ_USER user)"
	do_start "$port" "$mgmt" "$prom" "$stats"
	;;
stop)
	[[ $# -eq 0 ]] || usage
	do_stop "$port"
	;;
kill)
	[[ $# -eq 0 ]] || usage
	do_kill "$port"
	;;
restart)
	[[ $# -eq 0 ]] || usage
	[[ "$(id -u)" -eq 0 ]] || die "must be run as root (it runs the broker as the $RMQ_USER user)"
	do_restart "$port"
	;;
status)
	do_status "$port"
	;;
ctl)
	do_ctl "$port" "$@"
	;;
*) usage ;;
esac
