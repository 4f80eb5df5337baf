"""Idempotent produce load with confluent-kafka: throughput and delivery latency.

Sends --records records of --value-bytes bytes to partition 0 of --topic with
enable.idempotence=True (acks=all), then prints one JSON line: records, seconds,
records_per_s, p50_ms, p99_ms, max_ms. Latency is produce() call to delivery report, so
it includes librdkafka's linger (linger.ms, 5 ms by default).
"""

import argparse
import json
import struct
import sys
import time

from confluent_kafka import Producer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="bench")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--linger-ms", type=int, default=5)
    args = parser.parse_args()

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": args.linger_ms,
        }
    )
    padding = b"x" * max(0, args.value_bytes - 8)
    sent_at = [0.0] * args.records
    latency = [0.0] * args.records
    failures = []

    def delivered(err, msg):
        i = struct.unpack_from(">Q", msg.value())[0]
        latency[i] = time.perf_counter() - sent_at[i]
        if err is not None:
            failures.append(err)

    # Warm up: metadata, producer id, connections.
    producer.produce(args.topic, value=struct.pack(">Q", 0) + padding, partition=0,
                     on_delivery=lambda err, msg: None)
    producer.flush(30)

    started = time.perf_counter()
    for i in range(args.records):
        value = struct.pack(">Q", i) + padding
        while True:
            try:
                sent_at[i] = time.perf_counter()
                producer.produce(args.topic, value=value, partition=0, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - started
    if left or failures:
        print(f"undelivered: {left}, failed: {len(failures)} {failures[:3]}", file=sys.stderr)
        return 1
    ordered = sorted(latency)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    print(json.dumps({
        "records": args.records,
        "seconds": round(seconds, 3),
        "records_per_s": round(args.records / seconds),
        "p50_ms": round(pick(0.50), 2),
        "p99_ms": round(pick(0.99), 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
