#!/usr/bin/env bash
# Durable-storage benchmark for Warren.
#
# Builds Warren and warren-perf in release mode, then, per run, on a fresh data directory:
#   1. starts Warren and publishes COUNT 16-byte persistent messages with publisher confirms
#      (one producer, confirm window 1000) into one durable queue;
#   2. stops Warren (SIGKILL: a crash, the worst case) and starts it again on the same data
#      directory, timing process start -> AMQP accepted (the protocol header answered with
#      connection.start; polled every 10 ms);
#   3. drains the queue (one consumer, manual acks, prefetch 1000, one ack per 100 messages);
# and reports the publish (confirm) rate, the drain rate, the restart time with the full
# backlog, the broker's peak RSS (VmHWM from /proc/<pid>/status, per process: the publishing
# one and the restarted, draining one) and the data directory's size with the full backlog.
# With --runs N > 1 the medians are printed too.
#
# Usage: bench/durable.sh [--count N] [--runs N] [--sync always|never] [--port P]
#                         [--confirm N] [--prefetch N] [--multi-ack N] [--dir PARENT] [--keep] [--no-build] [--drop-caches]
#   --count N      messages per run (default 10000000)
#   --runs N       runs (default 1)
#   --sync MODE    Warren's --sync (default always: confirms after fsync)
#   --port P       AMQP port (default: a free one)
#   --confirm N    publisher confirm window (default 1000)
#   --prefetch N   consumer prefetch (default 1000)
#   --multi-ack N  acknowledge every N messages with one multiple ack (default 100)
#   --dir PARENT   where the per-run data directories are made (default ${TMPDIR:-/tmp})
#   --keep         keep the data directories and logs
#   --no-build     use the release binaries already in target/release
#   --drop-caches  before the timed restart, sync and drop the kernel's page cache (root only;
#                  affects the whole machine): a cold restart, reading the backlog from disk
#
# Examples:
#   bench/durable.sh --count 1000000 --runs 3
#   bench/durable.sh                      # 10M messages (needs about 1 GB of disk per run)
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=10000000
RUNS=1
SYNC=always
PORT=""
CONFIRM=1000
PREFETCH=1000
MULTI_ACK=100
PARENT="${TMPDIR:-/tmp}"
KEEP=0
BUILD=1
DROP_CACHES=0
while [ $# -gt 0 ]; do
	case "$1" in
	--count) COUNT="$2"; shift 2 ;;
	--runs) RUNS="$2"; shift 2 ;;
	--sync) SYNC="$2"; shift 2 ;;
	--port) PORT="$2"; shift 2 ;;
	--confirm) CONFIRM="$2"; shift 2 ;;
	--prefetch) PREFETCH="$2"; shift 2 ;;
	--multi-ack) MULTI_ACK="$2"; shift 2 ;;
	--dir) PARENT="$2"; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--no-build) BUILD=0; shift ;;
	--drop-caches) DROP_CACHES=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

if [ "$BUILD" = 1 ]; then
	cargo build --release -p warren-server -p warren-perf
fi
WARREN=target/release/warren
PERF=target/release/warren-perf
QUEUE=bench-durable

if [ -z "$PORT" ]; then
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fi
URI="amqp://guest:guest@127.0.0.1:${PORT}/"

now_ns() { date +%s%N; }

# The broker answers the AMQP protocol header with a method frame (connection.start).
amqp_up() {
	local b=""
	{ exec 3<>"/dev/tcp/127.0.0.1/${PORT}"; } 2>/dev/null || return 1
	printf 'AMQP\x00\x00\x09\x01' >&3
	IFS= read -r -t 2 -N 1 -u 3 b || true
	exec 3>&- 3<&-
	[ "$b" = $'\x01' ]
}

BROKER_PID=""
start_broker() { # data_dir log -> sets BROKER_PID, READY_MS
	local data="$1" log="$2" t0 deadline
	t0=$(now_ns)
	"$WARREN" --listen "127.0.0.1:${PORT}" --data-dir "$data" --sync "$SYNC" >>"$log" 2>&1 &
	BROKER_PID=$!
	deadline=$((t0 + 600 * 1000000000))
	until amqp_up; do
		if ! kill -0 "$BROKER_PID" 2>/dev/null; then
			echo "warren exited during startup; log:" >&2
			tail -20 "$log" >&2
			exit 1
		fi
		if [ "$(now_ns)" -gt "$deadline" ]; then
			echo "warren did not accept AMQP connections within 600 s" >&2
			exit 1
		fi
		sleep 0.01
	done
	READY_MS=$((($(now_ns) - t0) / 1000000))
}

vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

stop_broker() { # signal
	kill "-$1" "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=""
}

cleanup() {
	if [ -n "$BROKER_PID" ]; then stop_broker KILL; fi
}
trap cleanup EXIT

json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$1" "$2"; }

RESULTS=()
echo "durable benchmark: ${COUNT} x 16 B persistent messages, one durable queue, sync=${SYNC}," \
	"confirm window ${CONFIRM}, prefetch ${PREFETCH}, multi-ack ${MULTI_ACK}, ${RUNS} run(s)," \
	"$(nproc) CPUs$([ "$DROP_CACHES" = 1 ] && echo ", cold restart (page cache dropped)")"
for run in $(seq 1 "$RUNS"); do
	dir=$(mktemp -d "${PARENT%/}/warren-durable-bench.XXXXXX")
	data="$dir/data"
	log="$dir/warren.log"

	start_broker "$data" "$log"
	"$PERF" --uri "$URI" --producers 1 --consumers 0 --persistent --confirm "$CONFIRM" --size 16 \
		--pmessages "$COUNT" --queue "$QUEUE" --no-auto-delete --quiet --json >"$dir/publish.json" 2>>"$dir/perf.log"
	confirmed=$(json_field "$dir/publish.json" confirmed)
	pub_s=$(json_field "$dir/publish.json" elapsed_s)
	if [ "$confirmed" != "$COUNT" ]; then
		echo "run $run: only $confirmed of $COUNT messages confirmed" >&2
		exit 1
	fi
	hwm_publish=$(vmhwm_kib "$BROKER_PID")
	disk_bytes=$(du -sb "$data" | cut -f1)

	stop_broker KILL
	if [ "$DROP_CACHES" = 1 ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	start_broker "$data" "$log"
	restart_ms=$READY_MS

	"$PERF" --uri "$URI" --producers 0 --consumers 1 --prefetch "$PREFETCH" --multi-ack "$MULTI_ACK" \
		--cmessages "$COUNT" --queue "$QUEUE" --predeclared --quiet --json >"$dir/drain.json" 2>>"$dir/perf.log"
	received=$(json_field "$dir/drain.json" received)
	drain_s=$(json_field "$dir/drain.json" elapsed_s)
	hwm_drain=$(vmhwm_kib "$BROKER_PID")
	stop_broker TERM
	if [ "$received" != "$COUNT" ]; then
		echo "run $run: only $received of $COUNT messages drained" >&2
		exit 1
	fi

	pub_rate=$(python3 -c "print(round($COUNT / $pub_s))")
	drain_rate=$(python3 -c "print(round($COUNT / $drain_s))")
	printf 'run %d: publish %s msg/s (%.2f s), restart %d ms with %d messages (%.1f MiB on disk), drain %s msg/s (%.2f s), peak RSS %.1f MiB publishing, %.1f MiB restarted+draining\n' \
		"$run" "$pub_rate" "$pub_s" "$restart_ms" "$COUNT" "$(python3 -c "print($disk_bytes/1048576)")" \
		"$drain_rate" "$drain_s" "$(python3 -c "print($hwm_publish/1024)")" "$(python3 -c "print($hwm_drain/1024)")"
	RESULTS+=("$pub_rate $drain_rate $restart_ms $hwm_publish $hwm_drain $disk_bytes")

	if [ "$KEEP" = 1 ]; then
		echo "  kept $dir"
	else
		rm -rf "$dir"
	fi
done

if [ "$RUNS" -gt 1 ]; then
	printf '%s\n' "${RESULTS[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
m = [statistics.median(c) for c in zip(*rows)]
print(f"median of {len(rows)}: publish {m[0]:.0f} msg/s, drain {m[1]:.0f} msg/s, restart {m[2]:.0f} ms, "
      f"peak RSS {m[3]/1024:.1f} MiB publishing / {m[4]/1024:.1f} MiB restarted+draining, "
      f"{m[5]/1048576:.1f} MiB on disk")
'
fi
