"""Real Kafka clients against idempo-broker through idempo-proxy, which loses Produce acks.

Properties, restated by name in each test:
- exactly once and in order: with idempotence on (producer and broker), every record is in
  the log once, in the order it was sent, though acks were lost and batches retried; each
  record's reported offset is its position (the retry was answered with the original offset);
- the fault really happened: the proxy reports lost acks, and with idempotence off
  (producer and broker) the same faults leave duplicates in the log.

Each client reads back with its own consumer (assign, no group).
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from conftest import confluent_read

RECORDS = 30
FLUSH_EVERY = 3  # a few records per batch, ten round trips, so several acks can be lost
TIMEOUT_S = 30
SENT = [str(i) for i in range(RECORDS)]


# ---- confluent-kafka (librdkafka) ----

def confluent_produce(bootstrap: str, topic: str, idempotence: bool) -> list:
    """Sends SENT to partition 0; returns the delivery reports as (error, offset)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": idempotence,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    reports = []
    for i, value in enumerate(SENT):
        producer.produce(
            topic,
            value=value.encode(),
            partition=0,
            on_delivery=lambda err, msg: reports.append((err, msg.offset())),
        )
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            producer.flush(TIMEOUT_S)
    assert producer.flush(TIMEOUT_S) == 0, "every record was delivered in time"
    return reports


# ---- kafka-python ----

def kafka_python_produce(bootstrap: str, topic: str, idempotence: bool) -> list:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=idempotence,
        acks="all",
        retries=2**31 - 1 if idempotence else 10,
        linger_ms=5,
    )
    try:
        futures = []
        for i, value in enumerate(SENT):
            futures.append(producer.send(topic, value=value.encode(), partition=0))
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                producer.flush(TIMEOUT_S)
        producer.flush(TIMEOUT_S)
        return [(None, f.get(timeout=TIMEOUT_S).offset) for f in futures]
    finally:
        producer.close(timeout=5)


def kafka_python_read(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    try:
        partition = KpTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        high = consumer.end_offsets([partition])[partition]
        values = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(values) < high and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                values.extend(r.value.decode() for r in records)
        assert len(values) == high, f"read {len(values)} of {high} records"
        return values
    finally:
        consumer.close()


CLIENTS = {
    "confluent-kafka": (confluent_produce, confluent_read),
    "kafka-python": (kafka_python_produce, kafka_python_read),
}


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_writes_every_record_exactly_once_and_in_order_despite_lost_acks(
    lossy_cluster, client
):
    produce, read = CLIENTS[client]
    cluster = lossy_cluster(idempotence=True)
    reports = produce(cluster.bootstrap, "orders", idempotence=True)
    values = read(cluster.bootstrap, "orders")
    counts = cluster.fault_counts()
    cluster.stop()
    context = f"{counts}\n{cluster.log_tail()}"
    assert counts["dropped produce responses"] >= 1, "the fault really happened\n" + context
    assert values == SENT, "exactly once and in order\n" + context
    assert [err for err, _ in reports if err] == [], "no delivery failed"
    assert sorted(offset for _, offset in reports) == list(range(RECORDS)), (
        "each retry was answered with the original offset\n" + context
    )


@pytest.mark.parametrize("client", CLIENTS)
def test_without_idempotence_the_same_lost_acks_write_duplicates(lossy_cluster, client):
    produce, read = CLIENTS[client]
    cluster = lossy_cluster(idempotence=False)
    produce(cluster.bootstrap, "orders", idempotence=False)
    values = read(cluster.bootstrap, "orders")
    counts = cluster.fault_counts()
    cluster.stop()
    context = f"{counts}\n{cluster.log_tail()}"
    assert counts["dropped produce responses"] >= 1, context
    assert set(values) == set(SENT), "nothing was lost\n" + context
    assert len(values) > RECORDS, "the retries of lost acks were appended again\n" + context
