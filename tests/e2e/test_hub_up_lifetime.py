"""``hub up`` looks after its embedded broker, and stops in time whatever state that is in.

Each test starts ``hub up`` as a user does (a process of its own, its own data directory and
free ports) and does to it or to its broker what a crash, an operator or Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.kafka.embedded import broker_binary, free_port
from tests.hubtest import STUDENT_REFERRAL
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: "A few seconds": hub up drains HTTP, gives its workers 3 s, then stops the broker.
STOP_WITHIN = 10.0


def _process(pid: int) -> tuple[str, int] | None:
    """(state, parent) of a process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return stat[0], int(stat[1])


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie nobody has reaped yet has ended)."""
    found = _process(pid)
    return found is not None and found[0] != "Z"


class HubUp:
    """One ``hub up`` process on free ports with a data directory of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.data_dir = tmp_path / "data"
        self.log_path = tmp_path / "hub.log"
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HUB_DATA_DIR": str(self.data_dir)}
        self.env["HUB_HTTP_PORT"] = str(self.port)
        for name in ("HUB_DATABASE_URL", "HUB_KAFKA_BOOTSTRAP_SERVERS", "HUB_METRICS_PORT"):
            self.env.pop(name, None)
        self.proc: subprocess.Popen[bytes] | None = None
        #: Every broker process this hub up was seen to run.
        self.brokers_seen: set[int] = set()

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "up"], env=self.env, stdout=log, stderr=log
            )
        wait_for(self.healthy, timeout=60)
        self.broker()

    def healthy(self) -> bool:
        """hub up answers /health with 200 (database and Kafka up)"""
        try:
            return httpx.get(f"{self.base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def broker(self) -> int | None:
        """The pid of the broker hub up runs now, if it runs one."""
        assert self.proc is not None
        name = Path(broker_binary()).name
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            found = _process(int(entry.name))
            if Path(argv0).name == name and found and found[1] == self.proc.pid and found[0] != "Z":
                self.brokers_seen.add(int(entry.name))
                return int(entry.name)
        return None

    def headers(self, partner: str) -> dict[str, str]:
        creds = json.loads((self.data_dir / "credentials.json").read_text())
        c = next(c for c in creds if c["partner_id"] == partner)
        r = httpx.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(c["client_id"], c["client_secret"]),
        )
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def stop(self, sig: signal.Signals = signal.SIGINT) -> float:
        """Send ``sig``; seconds until hub up has ended."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hub up still runs 60 s after {sig.name}: {self.log()[-3000:]}")
        return time.monotonic() - started

    def brokers_left(self) -> list[int]:
        """Brokers of this hub up still running, after a grace of three seconds."""
        deadline = time.monotonic() + 3
        while any(_alive(p) for p in self.brokers_seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [p for p in self.brokers_seen if _alive(p)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        for pid in self.brokers_seen:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def hub_up(tmp_path: Path) -> Iterator[HubUp]:
    running = HubUp(tmp_path)
    running.start()
    yield running
    running.close()


def test_a_broker_that_died_is_started_again_and_the_hub_works_on(hub_up: HubUp) -> None:
    ude, amt = hub_up.headers("ude"), hub_up.headers("amt")
    dead = hub_up.broker()
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    killed = time.monotonic()

    def new_broker() -> int | None:
        """hub up runs a new broker"""
        pid = hub_up.broker()
        return pid if pid not in (None, dead) else None

    wait_for(new_broker, timeout=30, interval=0.05)
    wait_for(hub_up.healthy, timeout=30, interval=0.1)
    print(f"healthy again {time.monotonic() - killed:.2f} s after the broker was killed")
    wait_for(lambda: "kafka.embedded_restarted" in hub_up.log(), timeout=30)

    r = httpx.post(f"{hub_up.base}/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert r.status_code == 202, r.text
    rid = r.json()["id"]

    def in_amts_inbox() -> bool:
        """the referral reached the performer's inbox"""
        items = httpx.get(f"{hub_up.base}/v1/inbox", headers=amt).json()["items"]
        return any(i["referral_id"] == rid for i in items)

    wait_for(in_amts_inbox, timeout=60, interval=0.2)
    assert hub_up.stop() < STOP_WITHIN
    assert hub_up.proc is not None and hub_up.proc.returncode == 0, hub_up.log()[-3000:]
    assert hub_up.brokers_left() == []


def test_a_killed_hub_up_takes_its_broker_with_it(hub_up: HubUp) -> None:
    broker = hub_up.broker()
    assert broker is not None
    hub_up.stop(signal.SIGKILL)
    assert hub_up.brokers_left() == []


@pytest.mark.parametrize("state", ["frozen", "dead"])
def test_ctrl_c_stops_hub_up_in_seconds_whatever_its_broker_does(hub_up: HubUp, state: str) -> None:
    broker = hub_up.broker()
    assert broker is not None
    if state == "frozen":
        os.kill(broker, signal.SIGSTOP)
        # Until the probe's cache runs out, and the workers are stuck in their clients.
        wait_for(lambda: not hub_up.healthy(), timeout=30)
    else:  # killed, and Ctrl-C before hub up has started a new one
        os.kill(broker, signal.SIGKILL)
    took = hub_up.stop()
    assert took < STOP_WITHIN, hub_up.log()[-3000:]
    assert hub_up.proc is not None and hub_up.proc.returncode == 0, hub_up.log()[-3000:]
    assert hub_up.brokers_left() == []


def test_ctrl_c_answers_every_request_that_was_sent(hub_up: HubUp) -> None:
    headers = hub_up.headers("ude")
    outcomes: list[int | str] = []
    ready = threading.Barrier(21)

    def post() -> None:
        with httpx.Client(timeout=30) as client:
            ready.wait()
            try:
                r = client.post(
                    f"{hub_up.base}/v1/referrals", json=STUDENT_REFERRAL, headers=headers
                )
            except httpx.ConnectError:
                outcomes.append("refused")  # never sent: hub up no longer listened
                return
            except httpx.HTTPError as exc:
                outcomes.append(f"sent, no answer: {exc!r}")
                return
            outcomes.append(r.status_code)

    clients = [threading.Thread(target=post) for _ in range(20)]
    for thread in clients:
        thread.start()
    ready.wait()  # Ctrl-C as the burst arrives: uvicorn used to reset 15 of 20
    took = hub_up.stop()
    for thread in clients:
        thread.join(timeout=30)
    counted = Counter(outcomes)
    print(f"outcomes {dict(counted)}; hub up ended {took:.2f} s after Ctrl-C")
    assert set(counted) <= {202, 503, "refused"}, counted
    assert counted[202] >= 1
    assert took < STOP_WITHIN
    with sqlite3.connect(hub_up.data_dir / "hub.db") as db:
        (stored,) = db.execute("SELECT count(*) FROM referrals").fetchone()
    assert stored == counted[202]  # what was answered 202 is stored, nothing else


@pytest.mark.parametrize("command", ["up", "demo"])
def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path, command: str) -> None:
    data_dir = tmp_path / "data"
    kept = data_dir / "demo" / "kept"  # hub demo starts from an empty directory otherwise
    kept.parent.mkdir(parents=True)
    kept.write_text("another hub's")
    env = {**os.environ, "HUB_DATA_DIR": str(data_dir)}
    for name in ("HUB_DATABASE_URL", "HUB_KAFKA_BOOTSTRAP_SERVERS", "HUB_METRICS_PORT"):
        env.pop(name, None)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env["HUB_HTTP_PORT"] = str(port)
        done = subprocess.run(
            [sys.executable, "-m", "hub", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    named = [line for line in done.stderr.splitlines() if str(port) in line]
    assert len(named) == 1 and "HUB_HTTP_PORT" in named[0], done.stderr
    assert "Traceback" not in done.stderr
    assert "läuft" not in done.stderr + done.stdout
    assert (
        not (data_dir / "broker.log").exists() and not (data_dir / "demo" / "broker.log").exists()
    )
    assert kept.read_text() == "another hub's"
