#!/usr/bin/env bash
# Runs Warren's integration tests against the reference RabbitMQ 3.10
# (scripts/rabbitmq-ref.sh), to check the tests themselves.
#
# Usage: scripts/test-against-rabbitmq.sh [PORT] [-- extra cargo test args]
# PORT defaults to 5682. The broker is stopped again on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=5682
if [[ $# -gt 0 && "$1" != "--" ]]; then
	port=$1
	shift
fi
[[ "${1:-}" == "--" ]] && shift

"$here/rabbitmq-ref.sh" start "$port"
trap '"$here/rabbitmq-ref.sh" stop "$port"' EXIT

cd "$here/.."
WARREN_TEST_URL="amqp://guest:guest@127.0.0.1:${port}/" \
	cargo test -p warren-server --tests "$@"
