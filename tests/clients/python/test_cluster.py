"""confluent-kafka (librdkafka) through a leader crash and restart on a 3-broker cluster.

`idempo-broker --brokers 3` serves three replicating brokers in one process (RF 3,
min.insync.replicas=2); the test crashes the partition's leader through the admin endpoint
while an idempotent acks=all producer writes, waits for the controller to elect another
leader from the ISR, starts the crashed broker again, and then reads every record back.
"""

import json
import subprocess
import time
import urllib.request
from collections import Counter

import pytest

from conftest import binary, confluent_read, free_port, wait_for_port

TOPIC = "failover"
SESSION_TIMEOUT_MS = 1000


@pytest.fixture
def three_brokers(tmp_path):
    ports = [free_port() for _ in range(3)]
    admin_port = free_port()
    listen = [arg for port in ports for arg in ("--listen", f"127.0.0.1:{port}")]
    log = open(tmp_path / "cluster.log", "w")
    process = subprocess.Popen(
        [
            str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
            "--brokers", "3", *listen,
            "--admin", f"127.0.0.1:{admin_port}",
            "--replication-factor", "3",
            "--min-insync-replicas", "2",
            "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
        ],
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        for port in (*ports, admin_port):
            wait_for_port(port, process, "idempo-broker --brokers 3")
        yield {
            "bootstrap": ",".join(f"127.0.0.1:{p}" for p in ports),
            "admin": f"http://127.0.0.1:{admin_port}",
            "log": tmp_path / "cluster.log",
        }
    finally:
        process.kill()
        process.wait(timeout=10)


def admin(cluster, method, path):
    request = urllib.request.Request(cluster["admin"] + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def partition0(cluster):
    state = admin(cluster, "GET", "/cluster")
    return next(p for p in state["partitions"] if p["topic"] == TOPIC and p["partition"] == 0)


def wait_until(what, done, timeout_s=15):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_idempotent_acks_all_producer_writes_exactly_once_through_a_leader_crash(three_brokers):
    from confluent_kafka import Producer

    cluster = three_brokers
    producer = Producer({
        "bootstrap.servers": cluster["bootstrap"],
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

    admin(cluster, "POST", f"/brokers/{old_leader}/crash")
    send([f"during-{i}" for i in range(100)])
    wait_until("a new leader from the ISR", lambda: partition0(cluster)["leader"] not in (-1, old_leader))
    assert producer.flush(20) == 0

    admin(cluster, "POST", f"/brokers/{old_leader}/start")
    send([f"after-{i}" for i in range(100)])
    assert producer.flush(15) == 0
    wait_until("the restarted broker back in the ISR", lambda: old_leader in partition0(cluster)["isr"])

    sent = [f"{phase}-{i}" for phase in ("before", "during", "after") for i in range(100)]
    assert failures == [], failures
    assert sorted(delivered) == sorted(sent)
    values = confluent_read(cluster["bootstrap"], TOPIC)
    duplicates = {v: n for v, n in Counter(values).items() if n > 1}
    assert duplicates == {}, f"duplicates in the log: {duplicates}"
    assert sorted(values) == sorted(sent), "every record exactly once"
    assert [v for v in values if v.startswith("before")] == sent[:100], "in order within a phase"
