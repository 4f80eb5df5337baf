"""confluent-kafka (librdkafka) through a leader crash and restart on a 3-broker cluster.

`idempo-broker --brokers 3` serves three replicating brokers in one process (RF 3,
min.insync.replicas=2); the test crashes the partition's leader through the admin endpoint
while an idempotent acks=all producer writes, waits for the controller to elect another
leader from the ISR, starts the crashed broker again, and then reads every record back.
"""


from collections import Counter

import pytest

from conftest import confluent_read, free_port, start_three_brokers, wait_until

TOPIC = "failover"


@pytest.fixture
def three_brokers(three_brokers_factory):
    return three_brokers_factory()


def partition0(cluster):
    return cluster.partition(TOPIC, 0)


def produce_all(bootstrap, values):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for v in values:
        producer.produce(TOPIC, value=v.encode(), partition=0)
    assert producer.flush(15) == 0


def test_a_restarted_cluster_process_with_data_dir_keeps_every_record_and_takes_new_ones(tmp_path):
    """A whole-process restart (SIGTERM, then start again on the same --data-dir): the
    controller keeps no metadata log, so it restores each partition's leader epoch above
    what the logs hold and skips the producer ids the brokers know."""
    ports, admin_port = [free_port() for _ in range(3)], free_port()
    extra = ("--data-dir", str(tmp_path / "data"))
    cluster = start_three_brokers(tmp_path, ports, admin_port, extra)
    try:
        produce_all(cluster.bootstrap, [f"a-{i}" for i in range(50)])
        cluster.admin("POST", "/brokers/0/crash")
        wait_until("a new leader", lambda: partition0(cluster)["leader"] not in (-1, 0))
        produce_all(cluster.bootstrap, [f"b-{i}" for i in range(20)])
        cluster.admin("POST", "/brokers/0/start")
        wait_until("broker 0 back in the ISR", lambda: 0 in partition0(cluster)["isr"])
        epoch_before = partition0(cluster)["leader_epoch"]
    finally:
        cluster.process.terminate()
        cluster.process.wait(timeout=10)
    cluster = start_three_brokers(tmp_path, ports, admin_port, extra)
    try:
        assert partition0(cluster)["leader_epoch"] > epoch_before, "a new epoch after the restart"
        produce_all(cluster.bootstrap, [f"c-{i}" for i in range(10)])
        values = confluent_read(cluster.bootstrap, TOPIC)
        expected = [f"a-{i}" for i in range(50)] + [f"b-{i}" for i in range(20)] + [f"c-{i}" for i in range(10)]
        assert values == expected
        wait_until("every replica at the log end", lambda: all(
            r["log_end_offset"] == 80 for r in partition0(cluster)["logs"]))
    finally:
        cluster.process.kill()
        cluster.process.wait(timeout=10)


def test_idempotent_acks_all_producer_writes_exactly_once_through_a_leader_crash(three_brokers):
    from confluent_kafka import Producer

    cluster = three_brokers
    producer = Producer({
        "bootstrap.servers": cluster.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "topic.metadata.refresh.interval.ms": 500,
        "retry.backoff.ms": 50,
    })
    failures, delivered = [], []

    def report(error, message):
        if error is not None:
            failures.append(str(error))
        else:
            delivered.append(message.value().decode())

    def send(values):
        for v in values:
            producer.produce(TOPIC, value=v.encode(), partition=0, on_delivery=report)
            producer.poll(0)

    send([f"before-{i}" for i in range(100)])
    assert producer.flush(15) == 0
    old_leader = partition0(cluster)["leader"]
    assert partition0(cluster)["isr"] == [0, 1, 2]

    cluster.admin("POST", f"/brokers/{old_leader}/crash")
    send([f"during-{i}" for i in range(100)])
    wait_until("a new leader from the ISR", lambda: partition0(cluster)["leader"] not in (-1, old_leader))
    assert producer.flush(20) == 0

    cluster.admin("POST", f"/brokers/{old_leader}/start")
    send([f"after-{i}" for i in range(100)])
    assert producer.flush(15) == 0
    wait_until("the restarted broker back in the ISR", lambda: old_leader in partition0(cluster)["isr"])

    sent = [f"{phase}-{i}" for phase in ("before", "during", "after") for i in range(100)]
    assert failures == [], failures
    assert sorted(delivered) == sorted(sent)
    values = confluent_read(cluster.bootstrap, TOPIC)
    duplicates = {v: n for v, n in Counter(values).items() if n > 1}
    assert duplicates == {}, f"duplicates in the log: {duplicates}"
    assert sorted(values) == sorted(sent), "every record exactly once"
    assert [v for v in values if v.startswith("before")] == sent[:100], "in order within a phase"
