"""kill -9 and restart of idempo-broker --data-dir under an idempotent confluent-kafka producer.

Properties, restated by name in the test:
- nothing acknowledged is lost: every record the producer saw acknowledged is in the log
  after the broker was SIGKILLed and restarted IDEMPO_KILLS times (default 10);
- exactly once and in order: every record is in the log at most once, the values in the
  order they were sent, each acknowledged record at the offset its ack reported;
- the producer id and its window survived: the producer was granted one id in the whole
  run (no incarnation handed it a new one), and a retry of a batch appended by one
  incarnation, answered by the next, was deduplicated ("answered duplicate"), not appended
  again. The fault really happened: the proxy lost that ack, and the broker was killed
  before the retry.

`bench/kill-restart.sh` runs the same with 100 kills and prints the counts.
"""

import os
import random
import subprocess
import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from conftest import binary, confluent_read, free_port, wait_for_port
from durable import DurableBroker

KILLS = int(os.environ.get("IDEMPO_KILLS", "10"))
TOPIC = "durable"
TIMEOUT_S = 60
# Long enough that the retry of the lost ack reaches the next incarnation.
PROOF_RETRY_BACKOFF_MS = 2500
# Acks each incarnation gives before it is killed: every kill lands among writes.
ACKS_PER_INCARNATION = 30


def start_proxy(work, broker: DurableBroker, port: int) -> subprocess.Popen:
    """The fault proxy in front of the broker: loses the first Produce ack, then forwards."""
    return subprocess.Popen(
        [
            str(binary("IDEMPO_PROXY", "target/debug/idempo-proxy")),
            "--listen", f"127.0.0.1:{port}",
            "--upstream", f"127.0.0.1:{broker.port}",
            "--seed", "1",
            "--ack-loss", "1.0",
            "--max-faults", "1",
            "--close-after-fault", "on",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "proxy.log", "w"),
        stdin=subprocess.DEVNULL,
    )


def wait_for_line(path, text: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.01)
    raise AssertionError(f"{path.name} never said {text!r}")


def idempotent_producer(bootstrap: str, retry_backoff_ms: int) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "retry.backoff.ms": retry_backoff_ms,
            "retry.backoff.max.ms": max(retry_backoff_ms, 100),
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 100,
        }
    )


def test_acknowledged_records_survive_kill_9_exactly_once_and_in_order(tmp_path):
    proxy_port = free_port()
    broker = DurableBroker(tmp_path, advertise_port=proxy_port)
    broker.start()
    proxy = start_proxy(tmp_path, broker, proxy_port)
    wait_for_port(proxy_port, proxy, "idempo-proxy")
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()
        else:
            failed.append((msg.value().decode(), str(err)))

    sent = []

    def send(producer, value: str) -> None:
        producer.produce(TOPIC, value=value.encode(), partition=0, on_delivery=on_delivery)
        sent.append(value)

    try:
        # 1. The proof that a retry across a restart is deduplicated: the proxy loses the ack
        #    of the first batch (appended and fsynced), the broker is killed before the
        #    producer's retry, and the next incarnation answers the retry.
        proof = idempotent_producer(broker.bootstrap, PROOF_RETRY_BACKOFF_MS)
        send(proof, "0")
        wait_for_line(tmp_path / "proxy.log", "dropped produce response")
        broker.restart()
        assert proof.flush(TIMEOUT_S) == 0, "the first record was delivered"
        assert acked == {"0": 0}, (acked, failed)
        assert "answered duplicate with the original offsets" in broker.log(1), broker.log(1)
        producer = idempotent_producer(broker.bootstrap, 50)

        # 2. KILLS kill -9s while the producer writes.
        stop = threading.Event()

        def write():
            i = 1
            while not stop.is_set():
                send(producer, str(i))
                i += 1
                producer.poll(0)
                time.sleep(0.001)

        writer = threading.Thread(target=write)
        writer.start()
        rng = random.Random(7)
        try:
            for _ in range(KILLS):
                before = len(acked)
                deadline = time.monotonic() + TIMEOUT_S
                while len(acked) < before + ACKS_PER_INCARNATION:
                    assert time.monotonic() < deadline, "the producer made no progress"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.03))
                broker.restart()
        finally:
            stop.set()
            writer.join()
        assert producer.flush(TIMEOUT_S) == 0, f"{len(sent) - len(acked)} records undelivered"
        log = confluent_read(broker.bootstrap, TOPIC)
    finally:
        proxy.kill()
        proxy.wait(timeout=10)
        broker.stop()
    logs = broker.logs()
    duplicates = logs.count("answered duplicate with the original offsets")
    granted = logs.count("granted producer id")
    print(
        f"\nkills: {broker.kills}, sent: {len(sent)}, acknowledged: {len(acked)}, "
        f"failed: {len(failed)}, in the log: {len(log)}, distinct in the log: {len(set(log))}, "
        f"duplicates answered: {duplicates}, producer ids granted: {granted}"
    )
    assert broker.kills == KILLS + 1
    # nothing acknowledged is lost
    in_log = set(log)
    missing = [v for v in acked if v not in in_log]
    assert not missing, f"acknowledged but not in the log: {missing[:10]}"
    # exactly once and in order
    assert len(log) == len(set(log)), "a record is in the log twice"
    assert log == sorted(log, key=int), "the log is not in send order"
    assert all(log[offset] == value for value, offset in acked.items()), "ack offsets"
    assert not failed, failed[:5]
    # the producer id and its window survived
    assert granted == 2, f"two producers were granted {granted} ids"
    assert duplicates >= 1
