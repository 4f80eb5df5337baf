#!/usr/bin/env bash
# Fuzzes idempo's two untrusted-input paths with cargo-fuzz (libFuzzer + AddressSanitizer):
#   request_path  framing, preflight, decode and the KafkaApis handlers, on a fresh broker
#   record_batch  every RecordBatch decoder, compressed batches included
# Seeds: fuzz/seeds/<target>/ (real client frames, see fuzz/capture.py). New inputs go to
# fuzz/corpus/<target>/ (not committed); a crash is written to fuzz/artifacts/<target>/: copy
# it to fuzz/regressions/<target>/ with the fix, and net/tests/fuzz_corpus.rs replays it in CI.
#
# Usage: bench/fuzz.sh [TARGET|all] [SECONDS]        (default: all, 60 s each)
#   bench/fuzz.sh record_batch 600
#   RUNS=10000000 bench/fuzz.sh all                  (a number of executions instead)
#   SANITIZER=none bench/fuzz.sh all                 (no AddressSanitizer: faster build and
#                                                      runs; our crates forbid unsafe code, ASan
#                                                      guards the C of zstd and the deps' unsafe)
# Needs nightly and cargo-fuzz:  rustup toolchain install nightly; cargo install cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

target="${1:-all}"
seconds="${2:-60}"
case "$target" in
    all) targets=(request_path record_batch) ;;
    request_path|record_batch) targets=("$target") ;;
    *) echo "bench/fuzz.sh: unknown target '$target' (request_path, record_batch or all)" >&2; exit 2 ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "bench/fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2
    exit 2
fi
sanitizer="${SANITIZER:-address}"
case "$sanitizer" in
    address|none) ;;
    *) echo "bench/fuzz.sh: SANITIZER must be address or none, not '$sanitizer'" >&2; exit 2 ;;
esac
if [ -n "${RUNS:-}" ]; then
    limit=(-runs="$RUNS")
else
    limit=(-max_total_time="$seconds")
fi

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== cargo +nightly fuzz run -s $sanitizer $t (${limit[*]})"
    # -rss_limit_mb: a decompression bomb that got past the bound would show up as an
    # out-of-memory crash here, not as a slow run.
    cargo +nightly fuzz run -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        "${limit[@]}" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1
done
