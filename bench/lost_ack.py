"""Three idempotent records, one flush each, through a proxy that loses the first ack.

Prints each delivery report as `record N: partition P, offset O, error E`. A broker that
answers the retried batch as Kafka does reports the original offset; one that answers
DUPLICATE_SEQUENCE_NUMBER (46, base offset -1) leaves librdkafka with an invalid offset,
reported by confluent-kafka as `None`, though the record counts as delivered.
"""

import argparse
import sys

from confluent_kafka import Producer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", default="lostack")
    args = parser.parse_args()
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    reports = []
    for i in range(3):
        producer.produce(args.topic, value=f"r{i}".encode(), partition=0,
                         on_delivery=lambda err, msg, i=i: reports.append((i, err, msg)))
        producer.flush(30)
    for i, err, msg in reports:
        print(f"  record {i}: partition {msg.partition()}, offset {msg.offset()}, error {err}")
    return 0 if len(reports) == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
