"""``hub up`` as a user starts it, as a subprocess the ledger scenarios can SIGKILL.

The default ``hub up``: SQLite in its data directory and an embedded broker (Tansu, in
memory) as its child process. Nothing of the environment's ``HUB_*`` settings reaches it
but the data directory and the HTTP port. The broker is found by its command line
(``--listener-url tcp://127.0.0.1:PORT``), so that a scenario can kill it alone, and so that
a broker that outlived its ``hub up`` is seen and counted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

import hub
from hub.kafka.client import probe
from hub.kafka.embedded import broker_binary, free_port
from hub.runtime import BROKER_ADDRESS_FILE, CREDENTIALS_FILE

#: The code ``hub up`` runs is the code these tests import (a checkout, or an export of one).
CODE_ROOT = Path(hub.__file__).resolve().parents[1]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class BrokerProcess:
    pid: int
    port: int
    parent: int


def broker_processes() -> list[BrokerProcess]:
    """Every live embedded-broker process on this machine, with the port it listens on."""
    binary = Path(broker_binary()).name
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # a zombie has no command line; "pid (name) state ppid ..."
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state == "Z" or not argv or Path(argv[0].decode(errors="replace")).name != binary:
            continue
        port = _listener_port([a.decode(errors="replace") for a in argv])
        if port is not None:
            found.append(BrokerProcess(int(entry.name), port, int(parent)))
    return found


def _listener_port(argv: list[str]) -> int | None:
    for flag, value in itertools.pairwise(argv):
        if flag == "--listener-url" and value.startswith("tcp://127.0.0.1:"):
            return int(value.rsplit(":", 1)[1])
    return None


class HubUp:
    """One data directory's ``hub up``: started, SIGKILLed and started again on it."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: Every ``hub up`` process started here, and every broker one of them started.
        self.pids: set[int] = set()
        self.brokers_seen: set[BrokerProcess] = set()
        self._log: IO[bytes] | None = None
        self._closed = threading.Event()
        # A broker that hub up starts and loses between two looks would go unseen.
        self._watch = threading.Thread(target=self._watch_brokers, daemon=True, name="brokers")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        """The caller's environment without its hub settings, plus data dir and port."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        return {**env, "HUB_DATA_DIR": str(self.data_dir), "HUB_HTTP_PORT": str(self.port)}

    def start(self) -> float:
        """Start ``hub up`` and wait until it serves HTTP; seconds it took."""
        started = time.monotonic()
        self.starts += 1
        self._log = (self.log_dir / f"hub-up.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "up"],
            cwd=CODE_ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the runner reaches it only through stop()
        )
        self.pids.add(self.proc.pid)
        if not self._watch.is_alive():
            self._watch.start()
        self._wait_serving(started)
        self.note_brokers()
        return time.monotonic() - started

    def _wait_serving(self, started: float) -> None:
        while time.monotonic() - started < START_TIMEOUT:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"hub up exited at start: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub up did not serve within {START_TIMEOUT} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the ``hub up`` process, as a crash or the OOM killer would."""
        assert self.proc is not None
        self.note_brokers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()

    def stop(self) -> int | None:
        """SIGTERM, as Ctrl-C or a service manager would; its exit code (None: killed)."""
        if self.proc is None:
            return None
        self.note_brokers()
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                return self.proc.wait(timeout=STOP_TIMEOUT)
            return self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            return None
        finally:
            self._close_log()

    def close(self) -> None:
        """Stop watching for brokers (after ``stop``)."""
        self._closed.set()
        if self._watch.is_alive():
            self._watch.join(timeout=5)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # the embedded broker

    def bootstrap(self) -> str | None:
        """The broker address ``hub up`` left in its data directory, if any."""
        path = self.data_dir / BROKER_ADDRESS_FILE
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    def note_brokers(self) -> None:
        """Remember every broker a ``hub up`` of this scenario started."""
        self.brokers_seen.update(b for b in broker_processes() if b.parent in self.pids)

    def _watch_brokers(self) -> None:
        while not self._closed.wait(0.5):
            self.note_brokers()

    def current_broker(self) -> BrokerProcess | None:
        """The broker the running ``hub up`` uses now."""
        self.note_brokers()
        address = self.bootstrap()
        if not address or self.proc is None:
            return None
        port = int(address.rsplit(":", 1)[1])
        mine = [b for b in broker_processes() if b.port == port and b.parent == self.proc.pid]
        return mine[0] if mine else None

    def kill_broker(self) -> BrokerProcess | None:
        """SIGKILL the running ``hub up``'s broker alone; the process killed, if there was one."""
        broker = self.current_broker()
        if broker is not None:
            os.kill(broker.pid, signal.SIGKILL)
        return broker

    def wait_broker_back(self, killed: BrokerProcess, timeout: float) -> float | None:
        """Seconds until ``hub up`` runs a new broker that answers; None if it did not."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            broker = self.current_broker()
            new = broker is not None and broker.pid != killed.pid
            if new and broker is not None and probe(f"127.0.0.1:{broker.port}", timeout=0.5):
                return time.monotonic() - started
            time.sleep(0.2)
        return None

    def leftover_brokers(self, grace: float = 10.0) -> list[BrokerProcess]:
        """Brokers of this scenario still alive once no ``hub up`` of it runs (after ``grace``
        seconds for them to notice)."""
        assert not self.running, "only meaningful once hub up stopped"
        seen = {(b.pid, b.port) for b in self.brokers_seen}
        deadline = time.monotonic() + grace
        while True:
            left = [b for b in broker_processes() if (b.pid, b.port) in seen]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.2)

    # what a partner has, and what went wrong

    def credentials(self) -> dict[str, dict[str, Any]]:
        """The partner credentials the first start wrote, by partner id."""
        creds = json.loads((self.data_dir / CREDENTIALS_FILE).read_text())
        return {c["partner_id"]: c for c in creds}

    def database_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    def log_tail(self, chars: int = 3000) -> str:
        path = self.log_dir / f"hub-up.{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def end_processes(brokers: list[BrokerProcess]) -> None:
    """SIGKILL brokers this scenario's ``hub up`` left behind (after counting them)."""
    for b in brokers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(b.pid, signal.SIGKILL)
