#!/usr/bin/env bash
# Mutation testing of the cores with cargo-mutants (issue 8 §7; not in CI: it takes long).
#
#   bench/mutants.sh [CRATE...]     # default: idempo-protocol idempo-broker idempo-producer
#   JOBS=2 bench/mutants.sh         # more parallel builds (default 1)
#   SHARD=0/10 bench/mutants.sh idempo-broker
#                                   # every 10th mutant only (round-robin: a fixed sample
#                                   # spread over every file, for a quick estimate)
#
# For each crate, every mutant of its code is built and the crate's own tests are run
# (cargo-mutants' default: the package that holds the mutant). Doctests are skipped
# (`-- --lib --tests`) to keep a run within the hour; the lib's own doctests are examples,
# not the suite. Mutants excluded in .cargo/mutants.toml are listed there with the reason
# they cannot matter.
#
# Results go to target/mutants/CRATE/mutants.out: caught.txt, missed.txt, timeout.txt,
# unviable.txt. The score printed per crate is (caught + timeout) / (caught + missed +
# timeout): the share of viable mutants the tests detect. A mutant that makes the tests hang
# past the timeout is detected too (cargo-mutants reports it apart); unviable mutants do not
# compile and do not count.
#
# Needs cargo-mutants (`cargo install cargo-mutants --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    echo "bench/mutants.sh: cargo-mutants is not installed (cargo install cargo-mutants --locked)" >&2
    exit 2
fi
jobs="${JOBS:-1}"
timeout_s="${TIMEOUT:-120}"
crates=("$@")
if [ ${#crates[@]} -eq 0 ]; then
    crates=(idempo-protocol idempo-broker idempo-producer)
fi

count() { [ -f "$1" ] && grep -c . "$1" || echo 0; }

summary=()
for crate in "${crates[@]}"; do
    out="target/mutants/$crate"
    mkdir -p "$out"
    echo "== $crate" >&2
    # cargo-mutants exits non-zero when a mutant survives; the score says how many.
    sample=()
    if [ -n "${SHARD:-}" ]; then
        sample=(--shard "$SHARD" --sharding round-robin)
    fi
    cargo mutants --package "$crate" --jobs "$jobs" --timeout "$timeout_s" "${sample[@]}" \
        --output "$out" -- --lib --tests || true
    dir="$out/mutants.out"
    caught=$(count "$dir/caught.txt")
    missed=$(count "$dir/missed.txt")
    timed_out=$(count "$dir/timeout.txt")
    unviable=$(count "$dir/unviable.txt")
    viable=$((caught + missed + timed_out))
    score="n/a"
    if [ "$viable" -gt 0 ]; then
        score="$(awk -v c="$((caught + timed_out))" -v v="$viable" 'BEGIN { printf "%.1f%%", 100 * c / v }')"
    fi
    summary+=("$crate: $((caught + timed_out)) of $viable viable mutants detected ($score): caught $caught, timeouts $timed_out, missed $missed; unviable $unviable")
done

printf '%s\n' "${summary[@]}"
