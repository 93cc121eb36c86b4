"""The sequencer under faults: killed mid-batch it loses no leaf and gives no index twice, and
two sequencers that both believe they lead never both sign a checkpoint of one size."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.audit import sequencer as sequencer_module
from hub.audit.models import AuditCheckpoint, AuditRecord
from hub.audit.sequencer import LostRace, sequence_once
from hub.audit.service import record
from hub.audit.verify import verify
from hub.bootstrap import Hub
from hub.db import unit_of_work
from tests.hubtest import make_hub

ORIGIN = "talent-hub.duisburg.de/audit"


def _append(hub: Hub, count: int, per_transaction: int = 500) -> None:
    for start in range(0, count, per_transaction):
        with unit_of_work(hub.session_factory) as session:
            for i in range(start, min(start + per_transaction, count)):
                record(session, actor_type="system", actor="test", action="test.appended",
                       details={"i": i})  # fmt: skip


def _counts(hub: Hub) -> tuple[int, int, int]:
    """Records, numbered records, checkpoints."""
    with hub.session_factory() as session:
        records = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
        numbered = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.leaf_index.isnot(None))
        )
        checkpoints = session.scalar(select(func.count()).select_from(AuditCheckpoint))
    return int(records), int(numbered or 0), int(checkpoints or 0)


def _sequencer(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "audit", "sequence", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    return os.environ | {
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(data_dir),
        "HUB_AUDIT_CHECKPOINT_SECONDS": "0.2",
    }


def _assert_whole(hub: Hub) -> None:
    with hub.session_factory() as session:
        indices = session.scalars(select(AuditRecord.leaf_index)).all()
        report = verify(session)
    assert report.ok, report.problems
    assert sorted(i for i in indices if i is not None) == list(range(len(indices)))


def test_a_sequencer_killed_mid_batch_loses_no_leaf_and_repeats_no_index(
    database_url: str, tmp_path: Path
) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    env = _env(database_url, tmp_path)
    _append(hub, 20_000)
    kills = 0
    rng = random.Random(7)
    while kills < 3:
        before = _counts(hub)[2]
        proc = _sequencer(env, "--batch-size", "5000")
        deadline = time.monotonic() + 60
        while _counts(hub)[2] == before and time.monotonic() < deadline:
            time.sleep(0.02)
        # A full batch was just committed, so the sequencer is already inside the next one.
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        _append(hub, 1_000)
    records, numbered, _ = _counts(hub)
    assert numbered < records  # the kills left work behind, unsigned
    done = subprocess.run(
        [sys.executable, "-m", "hub", "audit", "sequence", "--once"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _counts(hub)[:2] == (records, records)
    _assert_whole(hub)


def test_two_sequencers_running_at_once_sign_one_consistent_log(
    database_url: str, tmp_path: Path
) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    env = _env(database_url, tmp_path)
    procs = [_sequencer(env, "--batch-size", "300") for _ in range(2)]
    try:
        began = time.monotonic()
        while time.monotonic() - began < 6:
            _append(hub, 200, per_transaction=20)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _counts(hub)[1] < _counts(hub)[0]:
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    records, numbered, checkpoints = _counts(hub)
    assert numbered == records and checkpoints > 1
    _assert_whole(hub)


def test_two_that_both_think_they_lead_never_both_sign(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader lock taken away: both read the same leaves and the same tree, then both try
    to number them at the same moment. The data itself lets only one through to signing."""
    hub, _ = make_hub(database_url, tmp_path)
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's BEGIN IMMEDIATE never lets two writers in at once")
    monkeypatch.setattr(sequencer_module, "_lead", lambda session: True)
    together = threading.Barrier(2, timeout=20)
    number = sequencer_module._number

    def number_together(session: Any, numbered: Any) -> None:
        together.wait()
        number(session, numbered)

    monkeypatch.setattr(sequencer_module, "_number", number_together)
    signed: Counter[int] = Counter()
    outcomes: list[str] = []

    def sequence() -> None:
        try:
            with unit_of_work(hub.session_factory) as session:
                sequence_once(
                    session,
                    origin=ORIGIN,
                    batch_size=1000,
                    signed=lambda size: signed.update([size]),
                )
            outcomes.append("signed")
        except LostRace:
            outcomes.append("lost")

    for _ in range(3):
        _append(hub, 50)
        threads = [threading.Thread(target=sequence) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(outcomes) == ["lost"] * 3 + ["signed"] * 3
    assert signed == Counter({50: 1, 100: 1, 150: 1})
    _assert_whole(hub)


def test_only_the_holder_of_the_leader_lock_sequences(database_url: str, tmp_path: Path) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's single writer is its leader lock")
    _append(hub, 10)
    leader = hub.session_factory()
    assert sequence_once(leader, origin=ORIGIN, batch_size=100).leaves == 10  # holds the lock
    with unit_of_work(hub.session_factory) as other:
        assert sequence_once(other, origin=ORIGIN, batch_size=100).tree_size == -1  # not leading
    leader.commit()
    leader.close()
    _append(hub, 5)
    with unit_of_work(hub.session_factory) as other:
        assert sequence_once(other, origin=ORIGIN, batch_size=100).tree_size == 15
    _assert_whole(hub)
