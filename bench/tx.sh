#!/usr/bin/env bash
# Transactional benchmark: consume-transform-publish, Warren vs RabbitMQ in the same run.
#
# Builds Warren and the exactly-once example (crates/exactly-once) in release mode, starts Warren
# (fresh data directory, free port, default sync = always) and a private RabbitMQ 3.10
# (scripts/rabbitmq-ref.sh), and runs `exactly-once bench` against each, the brokers taking
# turns run by run. A bench run preloads its inputs (persistent, confirmed) into durable queues,
# then workers each take BATCH inputs, publish one output per input to a queue `out` and one to a
# queue `audit`, ack the inputs and tx.commit, until their queue is empty. Configurations:
#   batch 1, 10, 100 on one channel; and batch 1 on 32 concurrent channels (many single-message
#   transactions at once: the broker can group-commit them, sharing fsyncs).
# Reported per broker and configuration (median of the runs): inputs per second, commits per
# second, and commit latency (tx.commit sent until tx.commit-ok) p50 and p99. Written to
#   bench/results/<YYYY-MM-DD>-tx.md
#
# Usage: bench/tx.sh [--runs N] [--messages N] [--no-build] [--no-rabbitmq | --rabbitmq-url URL]
#   --runs N        runs per broker and configuration (default 3; medians reported)
#   --messages N    inputs per run for batch 10 and 100 (default 20000; batch 1 runs use a
#                   quarter, so that a run stays short on brokers that fsync every commit)
#   --no-build      use the release binaries already in target/release
#   --no-rabbitmq   Warren only
#   --rabbitmq-url URL  use this running RabbitMQ instead of starting one
# Needs root for RabbitMQ (the launcher runs the node as the rabbitmq user).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
messages=20000
build=1
rabbitmq=1
rabbitmq_url=
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--messages) messages=$2; shift 2 ;;
	--no-build) build=0; shift ;;
	--no-rabbitmq) rabbitmq=0; shift ;;
	--rabbitmq-url) rabbitmq_url=$2; shift 2 ;;
	*) echo "usage: bench/tx.sh [--runs N] [--messages N] [--no-build] [--no-rabbitmq | --rabbitmq-url URL]" >&2; exit 2 ;;
	esac
done

target=${CARGO_TARGET_DIR:-target}
if [ "$build" = 1 ]; then
	cargo build --release -p warren-server -p warren-exactly-once
fi
warren="$target/release/warren"
bench="$target/release/exactly-once"

# A free port below 35536 (scripts/rabbitmq-ref.sh uses PORT+30000 for its epmd).
free_port() {
	python3 -c '
import random, socket
for port in random.sample(range(20000, 35000), 500):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break
'
}

wait_port() {
	local port=$1 deadline=$((SECONDS + 30))
	until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		((SECONDS < deadline)) || { echo "nothing listens on $port after 30 s" >&2; exit 1; }
		sleep 0.1
	done
}

work=$(mktemp -d "${TMPDIR:-/tmp}/warren-tx-bench.XXXXXX")
warren_pid=
rabbit_port=
cleanup() {
	[ -n "$warren_pid" ] && kill "$warren_pid" 2>/dev/null && wait "$warren_pid" 2>/dev/null
	[ -n "$rabbit_port" ] && scripts/rabbitmq-ref.sh stop "$rabbit_port" >/dev/null 2>&1
	rm -rf -- "$work"
}
trap cleanup EXIT

warren_port=$(free_port)
"$warren" --listen "127.0.0.1:$warren_port" --data-dir "$work/data" --management-listen 127.0.0.1:0 \
	--log warn >"$work/warren.log" 2>&1 &
warren_pid=$!
wait_port "$warren_port"
brokers="warren=amqp://guest:guest@127.0.0.1:$warren_port/%2f"
if [ "$rabbitmq" = 1 ] && [ -n "$rabbitmq_url" ]; then
	brokers="$brokers rabbitmq=$rabbitmq_url"
elif [ "$rabbitmq" = 1 ]; then
	rabbit_port=$(free_port)
	scripts/rabbitmq-ref.sh start "$rabbit_port" >&2
	brokers="$brokers rabbitmq=amqp://guest:guest@127.0.0.1:$rabbit_port/%2f"
fi

configs="1:1 10:1 100:1 1:32"
raw="$work/raw.txt"
: >"$raw"
for run in $(seq 1 "$runs"); do
	for config in $configs; do
		batch=${config%%:*}
		workers=${config##*:}
		count=$messages
		[ "$batch" = 1 ] && count=$((messages / 4))
		# the brokers take turns: each run starts with the next one
		order=$brokers
		((run % 2 == 0)) && order=$(echo "$brokers" | tr ' ' '\n' | tac | tr '\n' ' ')
		for b in $order; do
			name=${b%%=*}
			url=${b#*=}
			line=$("$bench" --url "$url" bench --batch "$batch" --workers "$workers" --messages "$count" | grep '^RESULT')
			echo "$name $line" | tee -a "$raw" >&2
		done
	done
done

date=$(date -u +%Y-%m-%d)
out="bench/results/$date-tx.md"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
python3 - "$raw" "$out" "$runs" "$cpu" "$(git rev-parse --short HEAD)" <<'EOF'
import sys, statistics, collections
raw, out, runs, cpu, commit = sys.argv[1:6]
rows = collections.defaultdict(list)
for line in open(raw):
    name, _, *fields = line.split()
    kv = dict(f.split("=", 1) for f in fields)
    rows[(kv["batch"], kv["workers"], name)].append(kv)
def med(key, batch, workers, name):
    vals = [float(r[key]) for r in rows.get((batch, workers, name), [])]
    return statistics.median(vals) if vals else None
configs = [("1", "1"), ("10", "1"), ("100", "1"), ("1", "32")]
brokers = [b for b in ("warren", "rabbitmq") if any(k[2] == b for k in rows)]
lines = [
    "# Transactional consume-transform-publish: Warren vs RabbitMQ",
    "",
    f"`bench/tx.sh` at commit {commit}, {runs} runs per broker and configuration (medians), on {cpu}.",
    "Each input: one persistent output to a durable queue `out` and one to `audit`, the inputs acked,",
    "all in one transaction per batch (`exactly-once bench`, a lapin client). Warren runs with its",
    "defaults (`sync = always`: tx.commit-ok after fsync); RabbitMQ 3.10.8 from",
    "`scripts/rabbitmq-ref.sh`. Commit latency: tx.commit sent until tx.commit-ok.",
    "",
    "| inputs per commit | channels | broker | inputs/s | commits/s | commit p50 (ms) | commit p99 (ms) |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
]
for batch, workers in configs:
    for b in brokers:
        m = lambda k: med(k, batch, workers, b)
        if m("msgs_per_s") is None:
            continue
        lines.append(
            f"| {batch} | {workers} | {b} | {m('msgs_per_s'):,.0f} | {m('commits_per_s'):,.0f} | "
            f"{m('commit_p50_us') / 1000:.2f} | {m('commit_p99_us') / 1000:.2f} |"
        )
if "rabbitmq" in brokers:
    lines += ["", "Warren / RabbitMQ, inputs per second:", ""]
    for batch, workers in configs:
        w, r = med("msgs_per_s", batch, workers, "warren"), med("msgs_per_s", batch, workers, "rabbitmq")
        if w and r:
            lines.append(f"- {batch} per commit, {workers} channel(s): {w / r:.2f}x")
open(out, "w").write("\n".join(lines) + "\n")
print(out)
EOF
