#!/usr/bin/env bash
# Idempotent produce throughput with idempo's Rust client (`idempo-producer`), side by side in
# one run: one idempo-broker, a 3-broker idempo cluster (replication factor 3, acks=all,
# min.insync.replicas=2) and tansu (one broker). Not in CI.
#
#   bench/cluster-speed.sh [RECORDS] [ROUNDS]     # default 1000000 records of 100 bytes, 5 rounds
#
# Each round starts a fresh broker (or cluster) per side and runs the same load: RECORDS records
# of 100 bytes, 100 per batch, one partition, idempotence on, acks=all, 5 requests in flight.
# The three sides take turns within a round, in a rotated order, so that the machine's drift
# (this one is noisy) falls on all of them alike; the table gives each side's median and the
# median of the per-round ratios. After each cluster run, the admin endpoint's GET /cluster
# shows that every replica holds every record and all three are in the ISR, i.e. that the
# acks=all answers did wait for replication.
#
# Everything listens on 127.0.0.1 only; the client runs on the same machine, so the figures
# compare the brokers under one client, not the brokers' own ceilings.
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
rounds="${2:-5}"
# shellcheck source=bench/lib/common.sh
source bench/lib/common.sh

start_scratch

install_tansu "$tmp"

echo "== cargo build --release -p idempo-net --bin idempo-broker --bin idempo-producer"
cargo build --release --quiet -p idempo-net --bin idempo-broker --bin idempo-producer
bin="${CARGO_TARGET_DIR:-target}/release"

# produce PORT -> the producer's summary line in $summary, its records/s in $rate
produce() {
    local out
    out="$("$bin/idempo-producer" --bootstrap "127.0.0.1:$1" --topic speed --records "$records" \
        --record-size 100 --batch-records 100 --acks all --reporting-interval-ms 3600000)"
    summary="$(grep ' records sent, ' <<<"$out")"
    rate="$(sed -E 's/^.* records sent, ([0-9.]+) records\/sec.*$/\1/' <<<"$summary")"
    if ! grep -q ' 0 batches failed' <<<"$out"; then
        echo "a batch failed: $out" >&2
        exit 1
    fi
}

# run_side SIDE -> records/s in $rate
run_side() {
    local port admin
    port="$(free_port)"
    case "$1" in
    one)
        RUST_LOG=warn "$bin/idempo-broker" --listen "127.0.0.1:$port" 2>>"$tmp/idempo.log" &
        started_pid=$!
        pids+=("$started_pid")
        wait_port "$port"
        produce "$port"
        ;;
    three)
        admin="$(free_port)"
        # Port 0: each broker on a free port of its own; broker 0's is the bootstrap.
        RUST_LOG=warn "$bin/idempo-broker" --brokers 3 --replication-factor 3 \
            --min-insync-replicas 2 --listen "127.0.0.1:$port" --listen 127.0.0.1:0 \
            --listen 127.0.0.1:0 --admin "127.0.0.1:$admin" 2>>"$tmp/idempo.log" &
        started_pid=$!
        pids+=("$started_pid")
        wait_port "$port"
        wait_port "$admin"
        produce "$port"
        python3 - "$admin" "$records" <<'PY'
import json, sys, time, urllib.request
admin, records = sys.argv[1], int(sys.argv[2])
for _ in range(50):
    cluster = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/cluster"))
    [partition] = [p for p in cluster["partitions"] if p["topic"] == "speed"]
    ends = [log["log_end_offset"] for log in partition["logs"]]
    if min(ends) >= records and len(partition["isr"]) == 3:
        break
    time.sleep(0.1)
assert min(ends) >= records and len(partition["isr"]) == 3, partition
print(f"      cluster: leader {partition['leader']}, ISR {partition['isr']}, "
      f"high watermark {partition['high_watermark']}, replicas' log ends {ends}")
PY
        ;;
    tansu)
        start_tansu "$port" "$port" speed "$tmp/tansu.log"
        produce "$port"
        ;;
    esac
    stop "$started_pid"
}

echo "== $rounds rounds of $records records of 100 bytes: idempotence on, acks=all, one partition"
sides=(one three tansu)
: >"$tmp/rates"
for round in $(seq "$rounds"); do
    for i in 0 1 2; do
        side="${sides[$(((i + round) % 3))]}"
        run_side "$side"
        echo "   round $round $side: $summary"
        echo "$round $side $rate" >>"$tmp/rates"
    done
done

python3 - "$tmp/rates" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    round_, side, rate = line.split()
    rates.setdefault(side, {})[int(round_)] = float(rate)
rounds = sorted(rates["one"])
def ratio(a, b):
    return statistics.median(rates[a][r] / rates[b][r] for r in rounds)
print()
print(f"records/s, median of {len(rounds)} rounds")
names = {"one": "idempo-broker, 1 broker", "three": "idempo-broker --brokers 3, RF 3",
         "tansu": "tansu 0.6.0, 1 broker"}
for side in ("one", "three", "tansu"):
    values = [rates[side][r] for r in rounds]
    print(f"  {names[side]:34}{statistics.median(values):>12,.0f}   "
          f"(min {min(values):,.0f}, max {max(values):,.0f})")
print()
print("median of the per-round ratios")
print(f"  1 broker / tansu        {ratio('one', 'tansu'):6.2f}")
print(f"  3 brokers / tansu       {ratio('three', 'tansu'):6.2f}")
print(f"  3 brokers / 1 broker    {ratio('three', 'one'):6.2f}")
PY
