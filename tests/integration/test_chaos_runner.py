"""The chaos runner ended by SIGTERM (a CI timeout, ``kill``) stops the ``hub up`` it started.

``hub up`` runs in a session of its own, so nothing but the runner's own clean-up reaches it;
before, a SIGTERM ended the runner at once and left ``hub up`` and its broker running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CODE_ROOT = Path(__file__).resolve().parents[2]


def _hub_ups_under(directory: Path) -> list[int]:
    """Processes running ``hub up`` with their data directory under ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if b"hub" not in args or b"up" not in args:
            continue
        data = [v for v in env if v.startswith(b"HUB_DATA_DIR=")]
        if data and data[0].split(b"=", 1)[1].decode().startswith(str(directory)):
            found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_sigterm_to_the_runner_stops_its_hub_up(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    runner = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.chaos.run", "--short", "--scenario", "hub-up-kill"),
            *("--kills", "1", "--workdir", str(tmp_path)),
        ],
        cwd=CODE_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: _hub_ups_under(tmp_path), 60), "hub up never started"
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
        left = _hub_ups_under(tmp_path)
        assert left == [], f"hub up left running: {left}"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
        for pid in _hub_ups_under(tmp_path):  # what a failed run left behind
            os.killpg(pid, signal.SIGKILL)
