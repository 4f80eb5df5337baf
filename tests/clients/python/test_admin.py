"""Topic admin with confluent-kafka's AdminClient against idempo-broker --data-dir.

Properties, restated by name in the test:
- created as asked: CreateTopics makes a topic with 3 partitions and the configs given,
  refuses an existing name (TOPIC_ALREADY_EXISTS), a replication factor this one broker
  cannot give (INVALID_REPLICATION_FACTOR) and a config it does not honour (INVALID_CONFIG);
- described as it is: Metadata lists its partitions, DescribeConfigs its configs with their
  sources (set on the topic, or the default), and the broker's;
- honoured: records produced are consumed back; DeleteRecords moves the low watermark;
  message.timestamp.before.max.ms=60000 refuses an hour-old record (INVALID_TIMESTAMP);
  min.insync.replicas=2 (IncrementalAlterConfigs) makes acks=all fail on one broker;
  CreatePartitions grows the topic;
- durable: after kill -9 the topic, its partition count, configs and low watermark are back;
  a deleted topic stays deleted and its files are gone.
"""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from durable import DurableBroker

TOPIC = "admin-t"
TIMEOUT_S = 30


def result(futures: dict):
    """The one future's result (raises its KafkaException)."""
    (future,) = futures.values()
    return future.result(timeout=TIMEOUT_S)


def error_code(futures: dict) -> int:
    with pytest.raises(KafkaException) as refused:
        result(futures)
    return refused.value.args[0].code()


def partitions(admin: AdminClient, topic: str):
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    return None if topic not in topics else len(topics[topic].partitions)


def topic_configs(admin: AdminClient) -> dict:
    entries = result(admin.describe_configs([ConfigResource("topic", TOPIC)]))
    return {name: (e.value, e.source) for name, e in entries.items()}


def produce(bootstrap: str, values_by_partition: dict) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors = []
    for partition, values in values_by_partition.items():
        for v in values:
            producer.produce(
                TOPIC, value=v.encode(), partition=partition,
                on_delivery=lambda err, _msg: err and errors.append(err),
            )
    assert producer.flush(TIMEOUT_S) == 0
    assert not errors, errors


def read(bootstrap: str, partition: int) -> tuple:
    """(low watermark, values from it to the high watermark) of one partition."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(TOPIC, partition), timeout=TIMEOUT_S
        )
        consumer.assign([TopicPartition(TOPIC, partition, low)])
        values = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(values) < high - low and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                continue
            values.append(message.value().decode())
        return low, values
    finally:
        consumer.close()


def test_topics_are_created_described_altered_and_deleted_and_survive_kill_9(tmp_path):
    broker = DurableBroker(tmp_path)
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        # created as asked
        result(admin.create_topics(
            [NewTopic(TOPIC, num_partitions=3, replication_factor=1,
                      config={"max.message.bytes": "200000"})]
        ))
        assert partitions(admin, TOPIC) == 3
        assert error_code(admin.create_topics([NewTopic(TOPIC, 1, 1)])) == 36
        assert error_code(admin.create_topics([NewTopic("rf3", 1, 3)])) == 38
        assert error_code(
            admin.create_topics([NewTopic("cfg", 1, 1, config={"cleanup.policy": "compact"})])
        ) == 40
        assert partitions(admin, "rf3") is None and partitions(admin, "cfg") is None

        # described as it is
        configs = topic_configs(admin)
        assert configs["max.message.bytes"] == ("200000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        assert configs["min.insync.replicas"] == ("1", ConfigSource.DEFAULT_CONFIG.value)
        broker_configs = result(admin.describe_configs([ConfigResource("broker", "1")]))
        assert broker_configs["producer.id.expiration.ms"].value == "86400000"

        # honoured: produce, consume, delete records
        produce(broker.bootstrap, {0: [f"a{i}" for i in range(5)], 2: ["c0"]})
        assert read(broker.bootstrap, 0) == (0, [f"a{i}" for i in range(5)])
        assert read(broker.bootstrap, 2) == (0, ["c0"])
        deleted = admin.delete_records([TopicPartition(TOPIC, 0, 3)])
        assert deleted[TopicPartition(TOPIC, 0, 3)].result(timeout=TIMEOUT_S).low_watermark == 3
        assert read(broker.bootstrap, 0) == (3, ["a3", "a4"])

        # honoured: message.timestamp.before.max.ms refuses a record stamped an hour ago
        # (KIP-937) with INVALID_TIMESTAMP
        alter = ConfigResource("topic", TOPIC, incremental_configs=[
            ConfigEntry("message.timestamp.before.max.ms", "60000",
                        incremental_operation=AlterConfigOpType.SET)
        ])
        result(admin.incremental_alter_configs([alter]))
        assert topic_configs(admin)["message.timestamp.before.max.ms"] == (
            "60000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        stale = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                          "message.timeout.ms": 1500, "retries": 0})
        errors = []
        stale.produce(TOPIC, value=b"old", partition=1,
                      timestamp=int(time.time() * 1000) - 3_600_000,
                      on_delivery=lambda err, _msg: errors.append(err))
        stale.flush(TIMEOUT_S)
        assert errors and errors[0] is not None, "an hour-old record is refused"
        assert errors[0].code() == KafkaError.INVALID_TIMESTAMP, errors[0]

        # honoured: min.insync.replicas=2 refuses acks=all on one broker
        alter = ConfigResource("topic", TOPIC, incremental_configs=[
            ConfigEntry("min.insync.replicas", "2", incremental_operation=AlterConfigOpType.SET)
        ])
        result(admin.incremental_alter_configs([alter]))
        assert topic_configs(admin)["min.insync.replicas"][0] == "2"
        strict = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                           "message.timeout.ms": 1500, "retries": 0})
        errors = []
        strict.produce(TOPIC, value=b"x", partition=1,
                       on_delivery=lambda err, _msg: errors.append(err))
        strict.flush(TIMEOUT_S)
        assert errors and errors[0] is not None, "acks=all needs 2 in-sync replicas"
        assert errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors[0]

        # CreatePartitions grows it
        result(admin.create_partitions([NewPartitions(TOPIC, 4)]))
        assert partitions(admin, TOPIC) == 4

        # durable: everything is back after kill -9
        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert partitions(admin, TOPIC) == 4
        configs = topic_configs(admin)
        assert configs["min.insync.replicas"][0] == "2"
        assert configs["max.message.bytes"][0] == "200000"
        assert read(broker.bootstrap, 0) == (3, ["a3", "a4"])

        # deleted, and stays deleted
        result(admin.delete_topics([TOPIC]))
        assert partitions(admin, TOPIC) is None
        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert partitions(admin, TOPIC) is None
        assert not list(broker.data_dir.glob("partition-*")), "the topic's files are gone"
    finally:
        broker.stop()
