#!/usr/bin/env bash
# Transactional consume-transform-publish benchmark: Warren against the reference RabbitMQ, in
# the same run.
#
# One producer fills a durable queue with persistent 16-byte messages (confirm window 1000);
# consumers, each in tx mode, publish every message they receive anew to a second durable queue,
# and every BATCH messages acknowledge them and commit, waiting for commit-ok before the next
# batch (warren-perf --tx-batch, prefetch BATCH). Scenarios:
#   batch 1, 10, 100 with one consumer, and batch 1 with 16 consumers (group commit: concurrent
#   single-message transactions should share fsyncs).
# Reported per broker: consumed-and-committed messages/s and commit latency (tx.commit to
# commit-ok) p50/p99, medians over RUNS runs, brokers alternated. Writes a Markdown table to
# stdout and, with --out FILE, to FILE as well.
#
# Usage: bench/tx.sh [--runs N] [--duration S] [--out FILE] [--no-build] [--no-rabbitmq]
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
DURATION=8
OUT=""
BUILD=1
RABBIT=1
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS="$2"; shift 2 ;;
	--duration) DURATION="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	--no-rabbitmq) RABBIT=0; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

if [ "$BUILD" = 1 ]; then
	cargo build --release -p warren-server -p warren-perf
fi
WARREN=target/release/warren
PERF=target/release/warren-perf
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
WPORT=$(free_port)
# The reference broker also takes PORT+20000 and PORT+30000 (scripts/rabbitmq-ref.sh).
RPORT=$(python3 -c 'import random; print(random.randint(20000, 35000))')
WPID=""
cleanup() {
	[ -n "$WPID" ] && kill "$WPID" 2>/dev/null || true
	[ "$RABBIT" = 1 ] && scripts/rabbitmq-ref.sh stop "$RPORT" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

"$WARREN" --listen "127.0.0.1:$WPORT" --data-dir "$WORK/warren" --management-listen 127.0.0.1:0 \
	>"$WORK/warren.log" 2>&1 &
WPID=$!
BROKERS="warren"
if [ "$RABBIT" = 1 ]; then
	scripts/rabbitmq-ref.sh start "$RPORT" >/dev/null
	BROKERS="warren rabbitmq"
fi
for _ in $(seq 100); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $WPORT), 1)" 2>/dev/null && break
	sleep 0.1
done

# scenario name -> warren-perf flags
# (the prefetch is the batch: a consumer takes one batch, commits it, then gets the next)
SCENARIOS=("batch 1|--consumers 1 --tx-batch 1 --prefetch 1"
	"batch 10|--consumers 1 --tx-batch 10 --prefetch 10"
	"batch 100|--consumers 1 --tx-batch 100 --prefetch 100"
	"batch 1, 16 consumers|--consumers 16 --tx-batch 1 --prefetch 1")

run_one() { # broker flags -> "rate p50 p99"
	local port=$WPORT
	[ "$1" = rabbitmq ] && port=$RPORT
	# shellcheck disable=SC2086
	"$PERF" --uri "amqp://guest:guest@127.0.0.1:${port}/" --persistent --confirm 1000 \
		--size 16 --queue bench-tx-in --tx-out bench-tx-out --duration "$DURATION" --json --quiet $2 |
		python3 -c 'import json,sys; r=json.load(sys.stdin); c=r.get("commit_latency_us") or {}
print(r["receive_rate"], c.get("p50", 0), c.get("p99", 0))'
}

declare -A RESULTS
for s in "${SCENARIOS[@]}"; do
	name=${s%%|*}
	flags=${s#*|}
	for run in $(seq "$RUNS"); do
		for broker in $BROKERS; do
			RESULTS["$name|$broker|$run"]=$(run_one "$broker" "$flags")
			echo "  $name, $broker, run $run: ${RESULTS["$name|$broker|$run"]}" >&2
		done
	done
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
{
	echo "# Transactional consume-transform-publish ($(date -u +%F), $(nproc) cores, median of $RUNS × ${DURATION} s runs)"
	echo
	echo "| scenario | Warren msg/s | commit p50 / p99 µs | RabbitMQ msg/s | commit p50 / p99 µs | Warren / RabbitMQ |"
	echo "|---|---:|---:|---:|---:|---:|"
	for s in "${SCENARIOS[@]}"; do
		name=${s%%|*}
		row="| $name"
		rates=()
		for broker in warren rabbitmq; do
			if [[ " $BROKERS " != *" $broker "* ]]; then
				row="$row | - | -"
				rates+=(0)
				continue
			fi
			col() { for run in $(seq "$RUNS"); do echo "${RESULTS["$name|$broker|$run"]}" | cut -d' ' -f"$1"; done | median; }
			rate=$(col 1)
			rates+=("$rate")
			row="$row | $(printf '%.0f' "$rate") | $(printf '%.0f / %.0f' "$(col 2)" "$(col 3)")"
		done
		ratio=$(python3 -c "print(f'{${rates[0]} / ${rates[1]}:.1f}x' if ${rates[1]} > 0 else '-')")
		echo "$row | $ratio |"
	done
} | tee ${OUT:+"$OUT"}
