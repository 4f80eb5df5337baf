"""Captures real clients' request frames as fuzz seeds (fuzz/seeds/).

Runs idempo-broker behind a recording relay, points real clients at the relay, and writes:
- seeds/request_path/<client>-<codec>.bin: every request frame one client run sent (all its
  connections, in arrival order, each with its 4-byte length prefix), the input shape of
  the request_path target;
- seeds/record_batch/<client>-<codec>-<n>.bin: each RecordBatch found in those Produce
  requests (found by its CRC-32C), the input shape of the record_batch target.

Usage (from the repo root, with the clients of tests/clients/python installed):
    cargo build -p idempo-net --bins
    python fuzz/capture.py [--broker target/debug/idempo-broker]
"""

import argparse
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "fuzz" / "seeds"
RECORDS = 4


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """Forwards loopback connections to the broker and keeps every client request frame."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frames = []  # (arrival time, frame with prefix)
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self.pump_requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client), daemon=True).start()

    def pump(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def pump_requests(self, source, sink):
        buffered = b""
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                buffered += data
                while len(buffered) >= 4:
                    (size,) = struct.unpack(">i", buffered[:4])
                    if len(buffered) < 4 + size:
                        break
                    with self.lock:
                        self.frames.append((time.monotonic(), buffered[: 4 + size]))
                    buffered = buffered[4 + size :]
        except OSError:
            pass
        finally:
            sink.close()

    def take(self) -> list:
        time.sleep(0.3)
        with self.lock:
            frames, self.frames = sorted(self.frames), []
        return [f for _, f in frames]


def batches_in(frame: bytes) -> list:
    """RecordBatches inside a Produce frame, found by a matching magic and CRC-32C."""
    found = []
    for at in range(len(frame) - 61):
        if frame[at + 16] != 2:
            continue
        (length,) = struct.unpack(">i", frame[at + 8 : at + 12])
        end = at + 12 + length
        if length < 49 or end > len(frame):
            continue
        (crc,) = struct.unpack(">I", frame[at + 17 : at + 21])
        if crc32c(frame[at + 21 : end]) == crc:
            found.append(frame[at:end])
    return found


def confluent(bootstrap: str, topic: str, codec: str):
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
        "compression.type": codec, "linger.ms": 20,
    })
    for i in range(RECORDS):
        producer.produce(topic, value=f"{codec} record {i} " .encode() * 3, key=b"k", partition=0)
    assert producer.flush(20) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "capture"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = 0
    deadline = time.monotonic() + 10
    while got < RECORDS and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got += 1
    consumer.close()


def kafka_python(bootstrap: str, topic: str, codec: str):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
        compression_type=None if codec == "none" else codec, linger_ms=20,
    )
    for i in range(RECORDS):
        producer.send(topic, value=f"{codec} record {i} ".encode() * 3, key=b"k", partition=0)
    producer.flush(20)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    for _ in consumer:
        pass
    consumer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", default=str(ROOT / "target/debug/idempo-broker"))
    parser.add_argument("--only", help="capture only CLIENT-CODEC, e.g. confluent-lz4")
    args = parser.parse_args()
    broker_port = free_port()
    relay = Relay(broker_port)
    broker = subprocess.Popen(
        [args.broker, "--listen", f"127.0.0.1:{broker_port}", "--advertise", f"127.0.0.1:{relay.port}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    bootstrap = f"127.0.0.1:{relay.port}"
    (SEEDS / "request_path").mkdir(parents=True, exist_ok=True)
    (SEEDS / "record_batch").mkdir(parents=True, exist_ok=True)
    try:
        runs = [("confluent", confluent, c) for c in ("none", "gzip", "snappy", "lz4", "zstd")]
        runs += [("kafka-python", kafka_python, c) for c in ("none", "gzip", "snappy", "lz4", "zstd")]
        if args.only:
            runs = [r for r in runs if f"{r[0]}-{r[2]}" == args.only]
        for name, run, codec in runs:
            relay.take()
            run(bootstrap, f"capture-{name}-{codec}", codec)
            frames = relay.take()
            (SEEDS / "request_path" / f"{name}-{codec}.bin").write_bytes(b"".join(frames))
            produce = [f for f in frames if struct.unpack(">h", f[4:6])[0] == 0]
            batches = [b for f in produce for b in batches_in(f)]
            for n, batch in enumerate(batches[:2]):
                (SEEDS / "record_batch" / f"{name}-{codec}-{n}.bin").write_bytes(batch)
            codecs = sorted({b[22] & 7 for b in batches})
            print(f"{name} {codec}: {len(frames)} frames, {len(batches)} batches, codecs {codecs}")
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
