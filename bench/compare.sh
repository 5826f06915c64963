#!/usr/bin/env bash
# Warren vs the reference RabbitMQ, on this machine.
#
# Builds Warren and warren-perf in release mode, starts Warren and a private RabbitMQ
# (scripts/rabbitmq-ref.sh) on free ports, runs the scenario matrix with warren-perf,
# alternating brokers run by run, and writes
#   bench/results/<YYYY-MM-DD>.md    tables of medians and Warren/RabbitMQ ratios
#   bench/results/<YYYY-MM-DD>.png   the same as a chart
#   bench/results/<YYYY-MM-DD>.json  every run's raw numbers
# (with --quick: <date>-quick.*).
#
# Usage: bench/compare.sh [--quick] [--runs N] [--duration S] [--only ID,ID] [--list]
#                         [--baseline BIN [--baseline-label TEXT]]
#   --quick       one run of each scenario, 3 s each, smaller backlog/connection counts (a smoke test)
#   --runs N      runs per broker and scenario (default 3; medians are reported)
#   --duration S  seconds per timed run (default 10)
#   --only IDS    run only these scenarios (see --list)
#   --baseline BIN  also run this warren binary (an earlier build) in the same rotation and add
#                 a regression table, this build vs the baseline
# Needs root (the RabbitMQ launcher runs the node as the rabbitmq user) and takes about 30 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

# 10k idle connections need as many descriptors in warren-perf and in each broker (inherited).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
	ulimit -n 65536 2>/dev/null || echo "warning: open files limit is $(ulimit -n); the 10k-connection scenario may fail" >&2
fi

cargo build --release -p warren-server -p warren-perf

if ! python3 -c 'import matplotlib' 2>/dev/null; then
	pip install --quiet matplotlib 2>/dev/null || pip install --quiet --break-system-packages matplotlib
fi

exec python3 bench/compare.py "$@"
