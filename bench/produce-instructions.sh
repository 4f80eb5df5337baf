#!/usr/bin/env bash
# Instruction counts of the broker's produce path with idempotence on and off (callgrind),
# and the dedup rule's share. Usage: bench/produce-instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p idempo-broker --bench produce_instructions --no-run 2>&1 | tail -1
bin=$(ls -t target/release/deps/produce_instructions-* | grep -v '\.d$' | head -1)
count() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
    --toggle-collect='*produce_all*' "$bin" "$1" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
  rm -f "$out"
}
on=$(count on)
off=$(count off)
echo "instructions in produce_all: idempotence on $on, off $off"
awk -v on="$on" -v off="$off" 'BEGIN { printf "dedup rule: %+.2f %% instructions\n", (on - off) * 100 / off }'
