#!/usr/bin/env bash
# What publish deduplication costs: the same load with and without it, in the same run, runs
# alternated, medians printed. Every message carries a distinct x-deduplication-header value
# (warren-perf --unique-keys) in both arms, so the only difference is the deduplication itself.
#
# Pairs (1 producer, 1 consumer, 16 B bodies):
#   transient  fanout exchange vs x-message-deduplication exchange (window in memory: not durable),
#              no confirms, auto-ack consumer
#   durable    the same, durable, persistent messages, confirms (window 1000), consumer acks every
#              100 with prefetch 1000: the window is on disk, written and fsynced with the messages
#   queue      a plain queue vs one with x-message-deduplication=true (transient, as `transient`)
#
# Usage: bench/dedup.sh [--runs N] [--duration S] [--sync always|never] [--only SCENARIO] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DURATION=5
BUILD=1
SYNC=always
ONLY=""
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS="$2"; shift 2 ;;
	--duration) DURATION="$2"; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--sync) SYNC="$2"; shift 2 ;;
	--only) ONLY="$2"; shift 2 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done

if [ "$BUILD" = 1 ]; then
	cargo build --release -p warren-server -p warren-perf
fi
WARREN=target/release/warren
PERF=target/release/warren-perf
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URI="amqp://guest:guest@127.0.0.1:${PORT}/"
WORK=$(mktemp -d)
BROKER_PID=""
cleanup() {
	if [ -n "$BROKER_PID" ]; then kill -KILL "$BROKER_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

"$WARREN" --listen "127.0.0.1:${PORT}" --management-listen "127.0.0.1:${MPORT}" --data-dir "$WORK/data" --sync "$SYNC" >"$WORK/warren.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 500); do
	if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then break; fi
	sleep 0.02
done

rate() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["receive_rate"])' "$1"; }
received() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["received"])' "$1"; }
# The broker's CPU time (user + system) in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BROKER_PID/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

common=(--uri "$URI" --producers 1 --consumers 1 --size 16 --duration "$DURATION" --unique-keys --json --quiet)
run() { # name, n, extra args... -> prints receive rate; records the broker's CPU per message
	local name="$1" n="$2" t0 t1
	shift 2
	t0=$(cpu_ticks)
	"$PERF" "${common[@]}" "$@" >"$WORK/$name-$n.json" 2>"$WORK/$name-$n.err"
	t1=$(cpu_ticks)
	python3 -c "print(round(($t1 - $t0) * $TICK_US / max(1, $(received "$WORK/$name-$n.json")), 2))" >"$WORK/$name-$n.cpu"
	rate "$WORK/$name-$n.json"
}

declare -A RATES CPU
SCENARIOS=()
pair() { # label, args of A..., --, args of B...
	local label="$1"
	shift
	if [ -n "$ONLY" ] && [ "$ONLY" != "$label" ]; then return; fi
	SCENARIOS+=("$label")
	local a=() b=() side=a
	for arg in "$@"; do
		if [ "$arg" = "--" ]; then side=b; continue; fi
		if [ "$side" = a ]; then a+=("$arg"); else b+=("$arg"); fi
	done
	for n in $(seq 1 "$RUNS"); do
		RATES["$label-plain"]+="$(run "$label-plain" "$n" --exchange "p-$label-$n" --queue "qp-$label-$n" "${a[@]}") "
		CPU["$label-plain"]+="$(cat "$WORK/$label-plain-$n.cpu") "
		RATES["$label-dedup"]+="$(run "$label-dedup" "$n" --exchange "d-$label-$n" --queue "qd-$label-$n" "${b[@]}") "
		CPU["$label-dedup"]+="$(cat "$WORK/$label-dedup-$n.cpu") "
	done
}

durable=(--persistent --confirm 1000 --prefetch 1000 --multi-ack 100)
pair transient --type fanout -- --type x-message-deduplication
pair durable --type fanout "${durable[@]}" -- --type x-message-deduplication "${durable[@]}"
pair queue --type fanout -- --type fanout --queue-args x-message-deduplication=true

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-10s %14s %14s %8s   (consume rates, msg/s; medians of %s runs of %s s)\n' scenario plain dedup cost "$RUNS" "$DURATION"
for label in "${SCENARIOS[@]}"; do
	p=$(echo "${RATES[$label-plain]}" | median)
	d=$(echo "${RATES[$label-dedup]}" | median)
	cost=$(python3 -c "print(f'{(1 - $d / $p) * 100:.1f}%')")
	printf '%-10s %14s %14s %8s   runs: plain %s / dedup %s\n' "$label" "$p" "$d" "$cost" "${RATES[$label-plain]}" "${RATES[$label-dedup]}"
done
printf '\n%-10s %14s %14s   (broker CPU, user + system, us per message delivered; medians)\n' scenario plain dedup
for label in "${SCENARIOS[@]}"; do
	printf '%-10s %14s %14s   runs: plain %s / dedup %s\n' "$label" "$(echo "${CPU[$label-plain]}" | median)" \
		"$(echo "${CPU[$label-dedup]}" | median)" "${CPU[$label-plain]}" "${CPU[$label-dedup]}"
done
