"""idempo-broker's connection limits and --metrics, seen by a real client (confluent-kafka).

Properties, restated by name in each test:
- idle connections free their slots: with --max-connections sockets held idle, a producer is
  served once --connections-max-idle-ms has closed them;
- the metrics tell the exactly-once story: through the lossy proxy, every record is counted
  in once (messagesin equals the records sent, the log end offset too), and the retries the
  lost acks caused are counted as duplicates;
- group members are counted: a subscribed consumer is one member, none once it has left.
"""

import socket
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer, Producer

from conftest import binary, free_port, wait_for_port

TIMEOUT_S = 30


def produce(bootstrap: str, topic: str, values: list, flush_every: int = 3) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), partition=0)
        if i % flush_every == flush_every - 1:
            producer.flush(TIMEOUT_S)
    assert producer.flush(TIMEOUT_S) == 0, "every record was delivered in time"


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_idle_connections_free_their_slots_and_a_producer_is_then_served(tmp_path):
    port = free_port()
    broker = subprocess.Popen(
        [
            str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
            "--listen", f"127.0.0.1:{port}",
            "--max-connections", "3",
            "--connections-max-idle-ms", "500",
        ],
        stderr=open(tmp_path / "broker.log", "w"),
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, broker, "idempo-broker")
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        produce(f"127.0.0.1:{port}", "after-idle", ["a", "b", "c"])
        for s in idle:
            s.settimeout(10)
            assert s.recv(1) == b"", "the idle connection was closed by the broker"
            s.close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def test_metrics_count_each_record_in_once_and_the_retries_as_duplicates(lossy_cluster):
    metrics = free_port()
    cluster = lossy_cluster(
        idempotence=True, broker_args=("--metrics", f"127.0.0.1:{metrics}")
    )
    values = [str(i) for i in range(30)]
    produce(cluster.bootstrap, "metered", values)
    dropped = cluster.fault_counts().get("dropped produce responses", 0)
    samples = scrape(metrics)
    assert samples["kafka_server_brokertopicmetrics_messagesin_total"] == len(values)
    assert samples['kafka_log_log_logendoffset{partition="0",topic="metered"}'] == len(values)
    assert samples["kafka_server_replicamanager_produceridcount"] == 1
    assert dropped > 0, "the proxy lost acks"
    assert samples["idempo_duplicates_total"] >= 1, "a retry after a lost ack is a duplicate"


def test_metrics_count_the_members_of_a_consumer_group(tmp_path):
    port, metrics = free_port(), free_port()
    broker = subprocess.Popen(
        [
            str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
            "--listen", f"127.0.0.1:{port}",
            "--metrics", f"127.0.0.1:{metrics}",
            "--group-initial-rebalance-delay-ms", "10",
        ],
        stderr=open(tmp_path / "broker.log", "w"),
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, broker, "idempo-broker")
        produce(f"127.0.0.1:{port}", "grouped", ["a"])
        consumer = Consumer(
            {"bootstrap.servers": f"127.0.0.1:{port}", "group.id": "metered-group"}
        )
        consumer.subscribe(["grouped"])
        deadline = time.monotonic() + TIMEOUT_S
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer joined its group"
        members = 'idempo_group_members{group="metered-group"}'
        assert scrape(metrics)[members] == 1
        consumer.close()  # LeaveGroup
        assert scrape(metrics).get(members, 0) == 0
    finally:
        broker.terminate()
        broker.wait(timeout=10)
