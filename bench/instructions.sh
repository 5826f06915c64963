#!/usr/bin/env bash
# Instructions per message on the hot path, counted exactly (not timed): the AMQP crate's
# `hot_path` example drives one connection through the real Connection + Session without
# sockets or threads, under `valgrind --tool=callgrind`. Two runs of different lengths per
# mode; the difference divided by the extra messages is the cost of one message, free of
# start-up costs. The same binary gives the same count every run, so two builds can be
# compared exactly where timed benchmarks on a shared machine cannot.
#
# Usage: bench/instructions.sh [--tree DIR] [MODE...]
#   --tree DIR  measure the checkout in DIR instead of this one (e.g. a `git worktree` of an
#               older commit from 3ee46f4 on, which carries the example: in crates/broker before
#               the AMQP session moved to crates/amqp)
#   MODE        noack ack confirm fanout topic keyed dedup dedup-queue keyed-disk dedup-disk
#               (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)"
tree="$here"
if [ "${1:-}" = --tree ]; then
	tree="$(cd "$2" && pwd)"
	shift 2
fi
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(noack ack confirm fanout topic keyed dedup dedup-queue keyed-disk dedup-disk)

if ! command -v valgrind >/dev/null; then
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind
fi
if [ -f "$tree/crates/amqp/examples/hot_path.rs" ]; then
	package=warren-amqp
elif [ -f "$tree/crates/broker/examples/hot_path.rs" ]; then
	package=warren-broker
else
	echo "no hot_path example in $tree (commits before 3ee46f4 lack it)" >&2
	exit 1
fi
target="${CARGO_TARGET_DIR:-$tree/target}"
(cd "$tree" && CARGO_TARGET_DIR="$target" cargo build -q --release -p "$package" --example hot_path)
bin="$target/release/examples/hot_path"

small=20000
large=120000
instructions() {
	local out
	out="$(mktemp)"
	valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
	awk '/^summary:/ { print $2 }' "$out"
	rm -f "$out"
}

echo "tree: $tree ($(git -C "$tree" rev-parse --short HEAD))"
printf '%-8s %12s\n' mode instr/msg
for mode in "${modes[@]}"; do
	a="$(instructions "$mode" "$small")"
	b="$(instructions "$mode" "$large")"
	awk -v m="$mode" -v a="$a" -v b="$b" -v n=$((large - small)) 'BEGIN { printf "%-8s %12.0f\n", m, (b - a) / n }'
done
