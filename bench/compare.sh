#!/usr/bin/env bash
# Warren vs the reference brokers, LavinMQ and RabbitMQ, on this machine.
#
# Builds Warren and warren-perf in release mode (into $CARGO_TARGET_DIR if set, else target/),
# starts Warren, LavinMQ 2.9.1 (prebuilt in ../shared/tools/lavinmq, its own data dir and free
# ports) and a private RabbitMQ (scripts/rabbitmq-ref.sh), runs the scenario matrix, rotating the
# brokers run by run (each run starts with the next broker), and writes
#   bench/results/<YYYY-MM-DD>.md    headline delivered rates, tables of medians, Warren/LavinMQ
#                                    and Warren/RabbitMQ ratios, broker CPU per message
#   bench/results/<YYYY-MM-DD>.png   the same as a chart
#   bench/results/<YYYY-MM-DD>.json  every run's raw numbers
# (with --quick: <date>-quick.*).
#
# Two load generators: warren-perf (crates/perf) for the plain scenario ids, and lavinmqperf
# (`lavinmqperf throughput`, LavinMQ's own client) for the lp-* ids, each broker restarted before
# every lp-* run. `--list` prints every scenario with its exact command. The shapes:
#   1 pub/1 con 16 B (auto-ack, ack every 100), confirms, persistent, fanout, backlog, fixed rates,
#   bodies of 1 KiB, 64 KiB and 1 MiB, 4 publishers with 4 consumers and with 1 consumer on one
#   queue (4p4c, 4p1c: consumer starvation), 1000 queues, idle connections (warren-perf);
#   lp-autoack (-x1 -y1 -s16), lp-ack100 (-a100 -P1000), lp-persistent (-p -c1000 -a100 -P1000),
#   lp-1KiB (-s1024 -a100 -P1000), lp-64KiB (-s65536 -a10 -P100), lp-1MiB (-s1048576 -a1 -P10),
#   lp-4p4c (-x4 -y4 -a100 -P1000), lp-4p1c (-x4 -y1 -a100 -P1000) (lavinmqperf).
#
# Usage: bench/compare.sh [--quick] [--runs N] [--duration S] [--only ID,ID] [--list]
#                         [--baseline BIN [--baseline-label TEXT]] [--lavinmq DIR | --no-lavinmq]
#   --quick       one run of each scenario, 3 s each, smaller backlog/connection counts (a smoke test)
#   --runs N      runs per broker and scenario (default 3; medians are reported)
#   --duration S  seconds per timed run (default 10)
#   --only IDS    run only these scenarios (see --list), e.g. --only lp-ack100,lp-4p1c,4p1c
#   --baseline BIN  also run this warren binary (an earlier build) in the same rotation and add
#                 a regression table, this build vs the baseline
#   --lavinmq DIR where the lavinmq and lavinmqperf binaries are (default $LAVINMQ_DIR, else
#                 ../shared/tools/lavinmq); without a working lavinmqperf the lp-* scenarios are
#                 skipped, without a working lavinmq LavinMQ is left out (both with a warning)
#   --no-lavinmq  leave LavinMQ out of the rotation (lavinmqperf still drives the lp-* scenarios)
# Needs root (the RabbitMQ launcher runs the node as the rabbitmq user) and takes about an hour
# with the default 3 runs (the lp-* scenarios restart RabbitMQ before every run).
set -euo pipefail
cd "$(dirname "$0")/.."

# 10k idle connections need as many descriptors in warren-perf and in each broker (inherited).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
	ulimit -n 65536 2>/dev/null || echo "warning: open files limit is $(ulimit -n); the 10k-connection scenario may fail" >&2
fi

cargo build --release -p warren-server -p warren-perf

# LavinMQ's binaries need a few Debian libraries; its install.sh apt-gets them (once per machine).
lavinmq_dir=${LAVINMQ_DIR:-$(cd .. && pwd)/shared/tools/lavinmq}
prev=
for arg in "$@"; do
	case $arg in --lavinmq=*) lavinmq_dir=${arg#--lavinmq=} ;; esac
	if [ "$prev" = --lavinmq ]; then lavinmq_dir=$arg; fi
	prev=$arg
done
if [ -x "$lavinmq_dir/lavinmqperf" ] && ! "$lavinmq_dir/lavinmqperf" --version >/dev/null 2>&1 &&
	[ "$(id -u)" -eq 0 ] && [ -x "$lavinmq_dir/install.sh" ]; then
	"$lavinmq_dir/install.sh" || echo "warning: $lavinmq_dir/install.sh failed" >&2
fi

if ! python3 -c 'import matplotlib' 2>/dev/null; then
	pip install --quiet matplotlib 2>/dev/null || pip install --quiet --break-system-packages matplotlib
fi

exec python3 bench/compare.py "$@"
