"""Consumer groups of real clients against idempo-broker, through idempo-proxy losing acks.

Properties, restated by name in each test:
- resumes from the commit: a `subscribe()` consumer reads part of a topic written by an
  idempotent producer, commits, and closes; a new consumer of the same group reads the rest,
  so that no record is read twice after the commit and none is skipped;
- the group splits and heals: two members of one group share the partitions (each partition
  to exactly one member); when one leaves, the other takes all of them;
- commits are durable: with --data-dir, a consumer resumes from the offsets its group
  committed before the broker was killed (SIGKILL) and restarted.

Each broker runs with a 100 ms group.initial.rebalance.delay.ms (Kafka's 3 s would only slow
the tests down) and 2 partitions; consumers use Kafka's smallest session timeout (6 s) and
a short heartbeat interval, so that a rebalance is noticed within a second.
"""

import signal
import subprocess
import time

import pytest
from conftest import binary, free_port, wait_for_port
from confluent_kafka import ConsumerGroupState, Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer

TOPIC = "events"
PARTITIONS = 2
RECORDS = 40
TIMEOUT_S = 20
GROUP_BROKER_ARGS = ("--group-initial-rebalance-delay-ms", "100")
SENT = {f"{i}" for i in range(RECORDS)}


def start(lossy_cluster):
    return lossy_cluster(idempotence=True, partitions=PARTITIONS, broker_args=GROUP_BROKER_ARGS)


def produce(bootstrap: str) -> None:
    """Writes SENT with an idempotent confluent-kafka producer, a few records per batch, over
    both partitions; through the proxy some acks are lost and retried."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    for i in range(RECORDS):
        producer.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
        if i % 4 == 3:
            producer.flush(TIMEOUT_S)
    assert producer.flush(TIMEOUT_S) == 0, "every record was delivered"


def context(cluster) -> str:
    return f"{cluster.fault_counts()}\n{cluster.log_tail()}"


# ---- confluent-kafka (librdkafka) ----

def confluent_consumer(bootstrap: str, group: str, assignor: str = "range,roundrobin") -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
            "partition.assignment.strategy": assignor,
        }
    )


def confluent_read(consumer: Consumer, at_least: int) -> list:
    values = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(values) < at_least and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        values.append(message.value().decode())
    return values


def confluent_read_then_commit(bootstrap: str, group: str, at_least: int) -> list:
    consumer = confluent_consumer(bootstrap, group)
    try:
        consumer.subscribe([TOPIC])
        values = confluent_read(consumer, at_least)
        if values:
            consumer.commit(asynchronous=False)
        return values
    finally:
        consumer.close()


def confluent_partitions(consumer: Consumer) -> set:
    return {tp.partition for tp in consumer.assignment()}


# ---- kafka-python ----

def kafka_python_consumer(bootstrap: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
        # One at a time, so that the first consumer of the resume test stops halfway.
        max_poll_records=1,
    )


def kafka_python_read(consumer: KafkaConsumer, at_least: int) -> list:
    values = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(values) < at_least and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=1000).values():
            values.extend(r.value.decode() for r in records)
    return values


def kafka_python_read_then_commit(bootstrap: str, group: str, at_least: int) -> list:
    consumer = kafka_python_consumer(bootstrap, group)
    try:
        consumer.subscribe([TOPIC])
        values = kafka_python_read(consumer, at_least)
        if values:
            consumer.commit()
        return values
    finally:
        consumer.close()


def kafka_python_partitions(consumer: KafkaConsumer) -> set:
    return {tp.partition for tp in consumer.assignment()}


READ_THEN_COMMIT = {
    "confluent-kafka": confluent_read_then_commit,
    "kafka-python": kafka_python_read_then_commit,
}


@pytest.mark.parametrize("client", READ_THEN_COMMIT)
def test_a_restarted_group_consumer_resumes_from_the_committed_offsets(lossy_cluster, client):
    read_then_commit = READ_THEN_COMMIT[client]
    cluster = start(lossy_cluster)
    produce(cluster.bootstrap)
    first = read_then_commit(cluster.bootstrap, "resume", RECORDS // 2)
    assert len(first) == RECORDS // 2, f"the first consumer stopped halfway: {first}"
    rest = read_then_commit(cluster.bootstrap, "resume", RECORDS - len(first))
    both = first + rest
    assert sorted(both, key=int) == sorted(SENT, key=int), (
        "resumes from the commit: every record read exactly once over the two consumers\n"
        f"first={first}\nrest={rest}\n" + context(cluster)
    )
    assert cluster.fault_counts()["dropped produce responses"] >= 1, "the fault really happened"
    cluster.stop()


def split_then_heal(new, poll, partitions, close, cluster):
    """Member a joins, then b; both polled until they share the partitions; b leaves; a is
    polled until it holds them all."""
    a = new(cluster.bootstrap, "split")
    b = new(cluster.bootstrap, "split")
    try:
        a.subscribe([TOPIC])
        b.subscribe([TOPIC])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            poll(a)
            poll(b)
            pa, pb = partitions(a), partitions(b)
            if pa and pb and pa | pb == set(range(PARTITIONS)):
                break
        pa, pb = partitions(a), partitions(b)
        assert pa and pb, f"both members hold partitions: a={pa} b={pb}\n" + context(cluster)
        assert not pa & pb, f"each partition to one member: a={pa} b={pb}"
        assert pa | pb == set(range(PARTITIONS)), f"every partition is held: a={pa} b={pb}"
        close(b)
        b = None
        deadline = time.monotonic() + TIMEOUT_S
        while partitions(a) != set(range(PARTITIONS)) and time.monotonic() < deadline:
            poll(a)
        assert partitions(a) == set(range(PARTITIONS)), (
            f"the member left takes every partition: a={partitions(a)}\n" + context(cluster)
        )
    finally:
        close(a)
        if b is not None:
            close(b)


@pytest.mark.parametrize("assignor", ["range,roundrobin", "cooperative-sticky"])
def test_confluent_kafka_members_split_the_partitions_and_one_takes_all_when_the_other_leaves(
    lossy_cluster, assignor
):
    """Eager (range) and incremental (cooperative-sticky, KIP-429) rebalancing: both are
    client-side protocols over the same JoinGroup/SyncGroup."""
    cluster = start(lossy_cluster)
    produce(cluster.bootstrap)
    split_then_heal(
        lambda bootstrap, group: confluent_consumer(bootstrap, group, assignor),
        lambda c: c.poll(0.1),
        confluent_partitions,
        Consumer.close,
        cluster,
    )
    cluster.stop()


def test_kafka_python_members_split_the_partitions_and_one_takes_all_when_the_other_leaves(
    lossy_cluster,
):
    cluster = start(lossy_cluster)
    produce(cluster.bootstrap)
    # kafka-python 3.0.12 starts a new JoinGroup if the previous one completed between two
    # polls (its join task is "done" but unread), so a poll shorter than a rebalance makes
    # its members rebalance forever, on Kafka too: poll for longer than a rebalance takes.
    split_then_heal(
        kafka_python_consumer,
        lambda c: c.poll(timeout_ms=1000),
        kafka_python_partitions,
        KafkaConsumer.close,
        cluster,
    )
    cluster.stop()


# ---- committed offsets across a broker restart (needs --data-dir) ----

def start_durable_broker(data_dir, port: int, log_path) -> subprocess.Popen:
    broker = subprocess.Popen(
        [
            str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
            "--listen", f"127.0.0.1:{port}",
            "--partitions", str(PARTITIONS),
            "--data-dir", str(data_dir),
            *GROUP_BROKER_ARGS,
        ],
        stderr=open(log_path, "a"),
        stdin=subprocess.DEVNULL,
    )
    wait_for_port(port, broker, "idempo-broker")
    return broker


def test_committed_offsets_survive_a_broker_kill_and_restart(tmp_path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log_path = tmp_path / "broker.log"
    broker = start_durable_broker(tmp_path / "data", port, log_path)
    try:
        produce(bootstrap)
        first = confluent_read_then_commit(bootstrap, "durable", RECORDS // 2)
        broker.send_signal(signal.SIGKILL)
        broker.wait(timeout=10)
        broker = start_durable_broker(tmp_path / "data", port, log_path)
        rest = confluent_read_then_commit(bootstrap, "durable", RECORDS - len(first))
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait(timeout=10)
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    assert len(first) == RECORDS // 2, f"the first consumer stopped halfway: {first}"
    assert sorted(first + rest, key=int) == sorted(SENT, key=int), (
        "resumes from the commit made before the kill: none twice, none skipped\n"
        f"first={first}\nrest={rest}\n{tail}"
    )


def test_confluent_admin_lists_describes_and_deletes_a_group(lossy_cluster):
    """ListGroups, DescribeGroups and DeleteGroups through confluent-kafka's AdminClient: a
    group with one member is Stable with both partitions assigned to it; once the member has
    left, the group can be deleted and is then Dead (unknown)."""
    cluster = start(lossy_cluster)
    produce(cluster.bootstrap)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    consumer = confluent_consumer(cluster.bootstrap, "admin")
    try:
        consumer.subscribe([TOPIC])
        deadline = time.monotonic() + TIMEOUT_S
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
        listed = admin.list_consumer_groups().result(TIMEOUT_S)
        assert [(g.group_id, g.state) for g in listed.valid] == [
            ("admin", ConsumerGroupState.STABLE)
        ], context(cluster)
        described = admin.describe_consumer_groups(["admin"])["admin"].result(TIMEOUT_S)
        assert described.state == ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        [member] = described.members
        assert {tp.partition for tp in member.assignment.topic_partitions} == {0, 1}
    finally:
        consumer.close()
    admin.delete_consumer_groups(["admin"])["admin"].result(TIMEOUT_S)
    gone = admin.describe_consumer_groups(["admin"])["admin"].result(TIMEOUT_S)
    assert gone.state == ConsumerGroupState.DEAD, "deleted: unknown to the coordinator"
    cluster.stop()
