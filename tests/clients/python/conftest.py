"""Starts idempo-broker behind idempo-proxy on free loopback ports, for real-client tests.

The binaries come from IDEMPO_BROKER and IDEMPO_PROXY (paths, relative to the repo root or
absolute), by default target/debug/idempo-broker and target/debug/idempo-proxy. The broker
advertises the proxy's address, so clients stay on the proxy after bootstrap; the proxy
loses Produce acks after the append and then closes the connection, as a broken TCP
connection would (see net/src/proxy.rs).
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
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



def stop_proxy_and_count(proxy: subprocess.Popen, counts: dict) -> dict:
    """Stops a proxy (Ctrl-C) once and fills `counts` from the "name: n" lines it prints."""
    if not counts and proxy.poll() is None:
        proxy.send_signal(signal.SIGINT)
        out, _ = proxy.communicate(timeout=10)
        for line in out.splitlines():
            name, _, count = line.rpartition(": ")
            if name:
                counts[name] = int(count)
    return counts


def log_tails(logs: Path, names, lines: int) -> str:
    """The last `lines` lines of each log file that exists, headed by its name."""
    text = []
    for name in names:
        path = logs / name
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {name} (last {lines} lines)\n" + "\n".join(tail))
    return "\n".join(text)

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
        return stop_proxy_and_count(self.proxy, self.counts)

    def log_tail(self, lines: int = 30) -> str:
        return log_tails(self.logs, ("broker.log", "proxy.log"), lines)

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


# ---- a 3-broker cluster in one process (idempo-broker --brokers 3), optionally behind the
# multi-broker proxy (one idempo-proxy port per broker) ----

SESSION_TIMEOUT_MS = 1000


@dataclass
class ThreeBrokers:
    """idempo-broker --brokers 3 (RF 3, min.insync.replicas=2) with its admin endpoint;
    clients bootstrap from `bootstrap` (the proxy's ports when a proxy fronts it)."""

    bootstrap: str
    admin_url: str
    process: subprocess.Popen
    logs: Path
    proxy: subprocess.Popen = None
    counts: dict = field(default_factory=dict)

    def admin(self, method: str, path: str) -> dict:
        request = urllib.request.Request(
            self.admin_url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    def partition(self, topic: str, index: int = 0) -> dict:
        """The partition as GET /cluster shows it (leader, leader_epoch, isr, logs...)."""
        state = self.admin("GET", "/cluster")
        return next(
            p for p in state["partitions"] if p["topic"] == topic and p["partition"] == index
        )

    def fault_counts(self) -> dict:
        """Stops the proxy (Ctrl-C) and returns what it printed, {} without a proxy."""
        if self.proxy is None:
            return self.counts
        return stop_proxy_and_count(self.proxy, self.counts)

    def log_tail(self, lines: int = 30) -> str:
        return log_tails(self.logs, ("cluster.log", "proxy.log"), lines)


def wait_until(what, done, timeout_s=15):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def start_three_brokers(logs: Path, ports, admin_port, extra=()) -> ThreeBrokers:
    listen = [arg for port in ports for arg in ("--listen", f"127.0.0.1:{port}")]
    process = subprocess.Popen(
        [
            str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
            "--brokers", "3", *listen,
            "--admin", f"127.0.0.1:{admin_port}",
            "--replication-factor", "3",
            "--min-insync-replicas", "2",
            "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
            *extra,
        ],
        stderr=open(logs / "cluster.log", "a"),
        stdin=subprocess.DEVNULL,
    )
    try:
        for port in (*ports, admin_port):
            wait_for_port(port, process, "idempo-broker --brokers 3")
    except Exception:
        process.kill()
        raise
    return ThreeBrokers(
        bootstrap=",".join(f"127.0.0.1:{p}" for p in ports),
        admin_url=f"http://127.0.0.1:{admin_port}",
        process=process,
        logs=logs,
    )


def put_proxy_in_front(cluster: ThreeBrokers, ports, proxy_args) -> None:
    """One idempo-proxy in front of the three brokers, one port each; clients bootstrap
    from its ports and Metadata keeps them there."""
    proxy_ports = [free_port() for _ in ports]
    upstreams = [arg for port in ports for arg in ("--upstream", f"127.0.0.1:{port}")]
    listens = [arg for port in proxy_ports for arg in ("--listen", f"127.0.0.1:{port}")]
    cluster.proxy = subprocess.Popen(
        [str(binary("IDEMPO_PROXY", "target/debug/idempo-proxy")), *upstreams, *listens,
         *proxy_args],
        stdout=subprocess.PIPE,
        stderr=open(cluster.logs / "proxy.log", "w"),
        stdin=subprocess.DEVNULL,
        text=True,
    )
    for port in proxy_ports:
        wait_for_port(port, cluster.proxy, "idempo-proxy")
    cluster.bootstrap = ",".join(f"127.0.0.1:{p}" for p in proxy_ports)


@pytest.fixture
def three_brokers_factory(tmp_path):
    """A factory: three_brokers_factory(extra=(), proxy_args=None) starts idempo-broker
    --brokers 3 (extra: more idempo-broker flags) and, with proxy_args (idempo-proxy fault
    flags), the multi-broker proxy in front of it."""
    started = []

    def start(extra=(), proxy_args=None):
        logs = tmp_path / f"cluster-{len(started)}"
        logs.mkdir()
        ports = [free_port() for _ in range(3)]
        cluster = start_three_brokers(logs, ports, free_port(), extra)
        started.append(cluster)
        if proxy_args is not None:
            put_proxy_in_front(cluster, ports, proxy_args)
        return cluster

    yield start
    for cluster in started:
        for process in (cluster.proxy, cluster.process):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
