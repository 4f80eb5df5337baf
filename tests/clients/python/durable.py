"""An idempo-broker on a --data-dir that a test can SIGKILL and restart on the same port.

Each incarnation logs to its own file (broker-0.log, broker-1.log, ...), at debug level for
idempo_net, so a test can read what each one answered ("answered duplicate with the original
offsets", "granted producer id").
"""

import os
import signal
import subprocess
from pathlib import Path

from conftest import binary, free_port, wait_for_port


class DurableBroker:
    """idempo-broker --data-dir DIR on a fixed port, restartable."""

    def __init__(self, work: Path, *, advertise_port: int | None = None, extra=()):
        self.work = work
        self.data_dir = work / "data"
        self.port = free_port()
        self.advertise_port = advertise_port or self.port
        self.extra = list(extra)
        self.incarnations = 0
        self.kills = 0
        self.process = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertise_port}"

    def log(self, incarnation: int) -> str:
        path = self.work / f"broker-{incarnation}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(self.log(i) for i in range(self.incarnations))

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.work / f"broker-{self.incarnations}.log", "w")
        env = dict(os.environ, RUST_LOG="info,idempo_net=debug")
        self.process = subprocess.Popen(
            [
                str(binary("IDEMPO_BROKER", "target/debug/idempo-broker")),
                "--listen", f"127.0.0.1:{self.port}",
                "--advertise", f"127.0.0.1:{self.advertise_port}",
                "--data-dir", str(self.data_dir),
                *self.extra,
            ],
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.incarnations += 1
        wait_for_port(self.port, self.process, "idempo-broker")

    def kill9(self) -> None:
        """SIGKILL: no clean shutdown, no final sync or snapshot."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1

    def restart(self) -> None:
        self.kill9()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
