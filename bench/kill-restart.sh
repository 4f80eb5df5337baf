#!/usr/bin/env bash
# kill -9 and restart idempo-broker --data-dir under an idempotent confluent-kafka producer,
# KILLS times (default 100), and print the counts: the CI test
# tests/clients/python/test_durability.py with more kills.
#
#   bench/kill-restart.sh            # 100 kills
#   bench/kill-restart.sh 500        # 500 kills
#
# Prints one line: kills, records sent, acknowledged, failed, in the log, distinct in the
# log, duplicates the broker answered (retries of batches a killed incarnation had
# appended), producer ids granted. The run fails if an acknowledged record is missing, a
# record is in the log twice, or the log is out of order.
set -euo pipefail
KILLS="${1:-100}"
cd "$(dirname "$0")/.."
cargo build --release -p idempo-net --bins
VENV="${VENV:-/tmp/idempo-bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r tests/clients/python/requirements.txt
fi
BASETEMP="$(mktemp -d /tmp/idempo-kill-restart.XXXXXX)"
trap 'rm -rf "$BASETEMP"' EXIT
IDEMPO_KILLS="$KILLS" \
IDEMPO_BROKER="$PWD/target/release/idempo-broker" \
IDEMPO_PROXY="$PWD/target/release/idempo-proxy" \
    "$VENV/bin/python" -m pytest -q -s -p no:cacheprovider --basetemp="$BASETEMP" \
    tests/clients/python/test_durability.py 2>/dev/null | grep -E "^kills:|passed|failed"
