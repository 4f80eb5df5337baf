"""Starts idempo-broker behind idempo-proxy on free loopback ports, for real-client tests.

The binaries come from IDEMPO_BROKER and IDEMPO_PROXY (paths, relative to the repo root or
absolute), by default target/debug/idempo-broker and target/debug/idempo-proxy. The broker
advertises the proxy's address, so clients stay on the proxy after bootstrap; the proxy
loses Produce acks after the append and then closes the connection, as a broken TCP
connection would (see net/src/proxy.rs).
"""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 10


def binary(env_var: str, default: str) -> Path:
    path = Path(os.environ.get(env_var, default))
    if not path.is_absolute():
        path = REPO / path
    if not path.is_file():
        pytest.fail(
            f"{path} does not exist: build it with `cargo build -p idempo-net --bins` "
            f"or point {env_var} at it"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {START_TIMEOUT_S} s")


@dataclass
class LossyCluster:
    """idempo-broker behind idempo-proxy; clients bootstrap from `bootstrap`."""

    bootstrap: str
    broker: subprocess.Popen
    proxy: subprocess.Popen
    logs: Path
    counts: dict = field(default_factory=dict)

    def fault_counts(self) -> dict:
        """Stops the proxy (Ctrl-C) and returns what it printed: {"dropped produce responses": n, ...}."""
        if not self.counts and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGINT)
            out, _ = self.proxy.communicate(timeout=10)
            for line in out.splitlines():
                name, _, count = line.rpartition(": ")
                if name:
                    self.counts[name] = int(count)
        return self.counts

    def log_tail(self, lines: int = 30) -> str:
        text = []
        for name in ("broker.log", "proxy.log"):
            path = self.logs / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"--- {name} (last {lines} lines)\n" + "\n".join(tail))
        return "\n".join(text)

    def stop(self) -> None:
        self.fault_counts()
        if self.broker.poll() is None:
            self.broker.terminate()
            self.broker.wait(timeout=10)


@pytest.fixture
def lossy_cluster(tmp_path):
    """A factory: lossy_cluster(idempotence=True, seed=1, drop=0.5, max_faults=3, partitions=1,
    broker_args=()), broker_args being extra idempo-broker flags."""
    started = []

    def start(*, idempotence: bool, seed: int = 1, drop: float = 0.5, max_faults: int = 3,
              partitions: int = 1, broker_args: tuple = ()):
        broker_port, proxy_port = free_port(), free_port()
        logs = tmp_path / f"cluster-{len(started)}"
        logs.mkdir()
        broker = subprocess.Popen(
            [
                str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
                "--listen", f"127.0.0.1:{broker_port}",
                "--advertise", f"127.0.0.1:{proxy_port}",
                "--partitions", str(partitions),
                "--idempotence", "on" if idempotence else "off",
                *broker_args,
            ],
            stderr=open(logs / "broker.log", "w"),
            stdin=subprocess.DEVNULL,
        )
        proxy = subprocess.Popen(
            [
                str(binary("IDEMPO_PROXY", "target/debug/idempo-proxy")),
                "--listen", f"127.0.0.1:{proxy_port}",
                "--upstream", f"127.0.0.1:{broker_port}",
                "--seed", str(seed),
                "--drop-produce-response", str(drop),
                "--close-after-fault", "on",
                "--max-faults", str(max_faults),
            ],
            stdout=subprocess.PIPE,
            stderr=open(logs / "proxy.log", "w"),
            stdin=subprocess.DEVNULL,
            text=True,
        )
        cluster = LossyCluster(f"127.0.0.1:{proxy_port}", broker, proxy, logs)
        started.append(cluster)
        wait_for_port(broker_port, broker, "idempo-broker")
        wait_for_port(proxy_port, proxy, "idempo-proxy")
        return cluster

    yield start
    for cluster in started:
        for process in (cluster.proxy, cluster.broker):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def confluent_read(bootstrap: str, topic: str, timeout_s: float = 30) -> list:
    """Every value in partition 0 of `topic`, from offset 0 to the high watermark, read with
    confluent-kafka (assign(), no group: group.id is required by the client, but without
    commits it never asks for a coordinator)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        partition = TopicPartition(topic, 0)
        _, high = consumer.get_watermark_offsets(partition, timeout=timeout_s)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = []
        deadline = time.monotonic() + timeout_s
        while len(values) < high and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                continue
            values.append(message.value().decode())
        assert len(values) == high, f"read {len(values)} of {high} records"
        return values
    finally:
        consumer.close()
