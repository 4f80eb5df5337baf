"""Compressed batches from real clients, through idempo-proxy losing Produce acks.

Properties, restated by name in each test:
- stored as sent: every batch in the log carries the codec the producer was configured with
  (the attributes of the fetched batches, read with a raw Fetch), so the broker neither
  refused nor rewrote it, and the client did not silently fall back to no compression;
- exactly once and in order: though acks were lost and compressed batches retried, a
  consumer reads every record once, in the order sent;
- the fault really happened: the proxy reports lost acks.

librdkafka compresses with lz4 only when the broker advertises FindCoordinator (its
RD_KAFKA_FEATURE_LZ4 maps to FindCoordinator v0+, in rdkafka_feature.c), and with zstd only
when it advertises Produce v7+ and Fetch v10+; gzip and snappy need nothing. librdkafka
writes raw snappy, kafka-python xerial-framed snappy: both are covered.
"""

import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from conftest import confluent_read

RECORDS = 30
FLUSH_EVERY = 3
TIMEOUT_S = 30
# Compressible values, so that no client sends a batch uncompressed because compressing it
# did not make it smaller (librdkafka does that).
SENT = [f"record {i:03d} " + "compressible text " * 8 for i in range(RECORDS)]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


# ---- a raw Kafka client, for what the clients do not show ----

def _request(bootstrap: str, api_key: int, version: int, body: bytes) -> bytes:
    """Sends one request (header v1) and returns the response body after the correlation id."""
    host, port = bootstrap.rsplit(":", 1)
    client_id = b"idempo-test"
    header = struct.pack(">hhih", api_key, version, 7, len(client_id)) + client_id
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _read_exactly(s, 4))
        response = _read_exactly(s, size)
    (correlation_id,) = struct.unpack(">i", response[:4])
    assert correlation_id == 7
    return response[4:]


def _read_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def advertised_apis(bootstrap: str) -> set:
    """The api keys the broker lists in ApiVersions v0."""
    body = _request(bootstrap, 18, 0, b"")
    error_code, count = struct.unpack(">hi", body[:6])
    assert error_code == 0
    return {struct.unpack(">h", body[6 + 6 * i: 8 + 6 * i])[0] for i in range(count)}


def fetched_codecs(bootstrap: str, topic: str) -> list:
    """The codec id (attributes bits 0-2) of every batch in partition 0, by a Fetch v4."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 0, 64 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, 0, 64 << 20)
    r = _request(bootstrap, 1, 4, body)
    at = 4  # throttle_time_ms
    (topics,) = struct.unpack(">i", r[at:at + 4])
    assert topics == 1
    (name_len,) = struct.unpack(">h", r[at + 4:at + 6])
    at += 6 + name_len
    (partitions,) = struct.unpack(">i", r[at:at + 4])
    assert partitions == 1
    _, error_code, _, _, aborted = struct.unpack(">ihqqi", r[at + 4:at + 30])
    assert error_code == 0, f"fetch error {error_code}"
    at += 30 + 16 * max(aborted, 0)
    (records_len,) = struct.unpack(">i", r[at:at + 4])
    records = r[at + 4:at + 4 + records_len]
    codecs = []
    while len(records) >= 61:
        (batch_length,) = struct.unpack(">i", records[8:12])
        (attributes,) = struct.unpack(">h", records[21:23])
        codecs.append(attributes & 7)
        records = records[12 + batch_length:]
    return codecs


# ---- confluent-kafka (librdkafka) ----

def confluent_produce(bootstrap: str, topic: str, codec: str) -> None:
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": codec,
    })
    reports = []
    for i, value in enumerate(SENT):
        producer.produce(topic, value=value.encode(), partition=0,
                         on_delivery=lambda err, msg: reports.append(err))
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            producer.flush(TIMEOUT_S)
    assert producer.flush(TIMEOUT_S) == 0, "every record was delivered in time"
    assert reports == [None] * RECORDS, f"delivery errors: {[e for e in reports if e]}"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_compressed_batches_are_stored_as_sent_exactly_once(lossy_cluster, codec):
    """stored as sent; exactly once and in order; the fault really happened."""
    cluster = lossy_cluster(idempotence=True, seed=11, drop=0.5, max_faults=3)
    if codec == "lz4" and 10 not in advertised_apis(cluster.bootstrap):
        pytest.skip("librdkafka sends lz4 uncompressed unless FindCoordinator (api key 10) "
                    "is advertised; the consumer-group coordinator adds it")
    topic = f"compressed-confluent-{codec}"
    confluent_produce(cluster.bootstrap, topic, codec)
    codecs = fetched_codecs(cluster.bootstrap, topic)
    assert codecs and set(codecs) == {CODEC_IDS[codec]}, (
        f"every stored batch is {codec}: {codecs}\n{cluster.log_tail()}")
    assert confluent_read(cluster.bootstrap, topic) == SENT, "exactly once and in order"
    assert cluster.fault_counts().get("dropped produce responses", 0) > 0, cluster.log_tail()


# ---- kafka-python ----

def kafka_python_produce(bootstrap: str, topic: str, codec: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                             linger_ms=5, compression_type=codec, retries=10,
                             request_timeout_ms=TIMEOUT_S * 1000)
    try:
        for i, value in enumerate(SENT):
            future = producer.send(topic, value=value.encode(), partition=0)
            if i % FLUSH_EVERY == FLUSH_EVERY - 1:
                producer.flush(TIMEOUT_S)
        future.get(timeout=TIMEOUT_S)
        producer.flush(TIMEOUT_S)
    finally:
        producer.close(timeout=TIMEOUT_S)


def kafka_python_read(bootstrap: str, topic: str) -> list:
    from kafka import KafkaConsumer, TopicPartition as KpTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    try:
        partition = KpTopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        return [m.value.decode() for m in consumer]
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_compressed_batches_are_stored_as_sent_exactly_once(lossy_cluster, codec):
    """stored as sent; exactly once and in order; the fault really happened."""
    cluster = lossy_cluster(idempotence=True, seed=12, drop=0.5, max_faults=3)
    topic = f"compressed-kafka-python-{codec}"
    kafka_python_produce(cluster.bootstrap, topic, codec)
    codecs = fetched_codecs(cluster.bootstrap, topic)
    assert codecs and set(codecs) == {CODEC_IDS[codec]}, (
        f"every stored batch is {codec}: {codecs}\n{cluster.log_tail()}")
    assert kafka_python_read(cluster.bootstrap, topic) == SENT, "exactly once and in order"
    assert cluster.fault_counts().get("dropped produce responses", 0) > 0, cluster.log_tail()
