"""Fixtures for tests against the real embedded broker and a real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import Hub
from hub.kafka.client import ensure_topics
from hub.kafka.embedded import EmbeddedBroker
from hub.runtime import build_relay, start_thread, topic_plan
from tests.hubtest import Partners, make_hub

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh embedded broker per test: some tests pause or kill it."""
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        yield b


class Running:
    """A hub wired to the broker, with relay and consumers as threads or processes."""

    def __init__(self, hub: Hub, partners: Partners, env: dict[str, str]) -> None:
        self.hub = hub
        self.partners = partners
        self.env = env
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_relay(self) -> None:
        """The relay, in this process."""
        self.threads.append(start_thread("relay", build_relay(self.hub).run, self.stop))

    def start_consumer_thread(self, name: str) -> None:
        """A consumer, in this process."""
        from consumers.registry import build_runner

        self.threads.append(start_thread(name, build_runner(name, self.hub).run, self.stop))

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """A ``hub`` sub-command as its own process (so a test can SIGKILL it)."""
        log = open(Path(self.env["HUB_DATA_DIR"]) / f"{'-'.join(args)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs["-".join(args)] = proc
        return proc

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for t in self.threads:
            t.join(timeout=15)
        self.hub.engine.dispose()


@pytest.fixture
def running(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, broker: EmbeddedBroker
) -> Iterator[Running]:
    """A migrated hub with demo partners and its topics; nothing started yet.

    ``@pytest.mark.hub_settings(name=value)`` overrides settings, also for spawned processes.
    """
    marker = request.node.get_closest_marker("hub_settings")
    overrides: dict[str, Any] = dict(marker.kwargs) if marker else {}
    hub, partners = make_hub(
        database_url, tmp_path, kafka_bootstrap_servers=broker.bootstrap_servers, **overrides
    )
    ensure_topics(broker.bootstrap_servers, topic_plan(hub))
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "HUB_LOG_FORMAT": "json",
        **{f"HUB_{k.upper()}": str(v) for k, v in overrides.items()},
    }
    r = Running(hub, partners, env)
    yield r
    r.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {predicate.__doc__ or predicate}")
