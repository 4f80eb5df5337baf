#!/usr/bin/env bash
# Instruction counts (callgrind) of the simulator's two --bench workloads, at a tenth of their
# size (25 000 records per producer instead of 250 000; callgrind runs ~50x slower):
#   A  one broker:          --producers 4 --partitions 8 --batch-records 1 --ack-loss 0.2 --request-loss 0.05
#   B  the same, replicated: ... --brokers 3 --replication-factor 3
# Counts do not depend on the machine or its load, so they compare two builds step by step;
# wall-clock M/s (run --bench) only as medians of interleaved runs. See bench/SPEED.md.
# Usage: bench/sim-instructions.sh [path/to/idempo-sim]   (default: builds target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --release --bin idempo-sim 2>&1 | tail -1
  bin=target/release/idempo-sim
fi
run="run --producers 4 --partitions 8 --records 25000 --batch-records 1 --ack-loss 0.2 --request-loss 0.05"
count() {
  local out
  out=$(mktemp)
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" $run "$@" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
  rm -f "$out"
}
# shellcheck disable=SC2086
sends_a=$("$bin" $run --bench | awk '/batch sends \(first/ {print $2}')
# shellcheck disable=SC2086
sends_b=$("$bin" $run --brokers 3 --replication-factor 3 --bench | awk '/batch sends \(first/ {print $2}')
a=$(count)
b=$(count --brokers 3 --replication-factor 3)
echo "A (1 broker):  $a instructions, $sends_a batch sends, $((a / sends_a)) instructions per batch send"
echo "B (3 brokers): $b instructions, $sends_b batch sends, $((b / sends_b)) instructions per batch send"
