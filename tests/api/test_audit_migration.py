"""Migration 0012 carries the hash-chained trail over: its records become the first leaves, in
their order, followed by one record of what the old chain proved when it was retired."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from hub.audit.models import AuditRecord
from hub.audit.sequencer import Sequencer
from hub.audit.service import record
from hub.audit.verify import verify
from hub.bootstrap import bootstrap
from hub.db import unit_of_work
from hub.migrate import alembic_config
from hub.settings import Settings

CHAINED = ("seq", "at", "actor_type", "actor", "action", "person_id", "purpose", "details",
           "prev_hash")  # fmt: skip


def _old_hash(values: dict[str, Any]) -> str:
    """The retired chain's hash, as hub.audit.service computed it before 0012."""
    content = {name: values[name] for name in CHAINED}
    content["at"] = values["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _old_trail(connection: Any, count: int, *, break_at: int | None = None) -> str:
    prev, began = "0" * 64, datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    for seq in range(1, count + 1):
        values = {
            "seq": seq, "at": began + timedelta(seconds=seq), "actor_type": "partner",
            "actor": "ude", "action": "api.call", "person_id": f"p_{seq % 3}",
            "purpose": "education", "details": {"status": 200, "n": seq}, "prev_hash": prev,
        }  # fmt: skip
        digest = _old_hash(values)
        if seq == break_at:
            values["details"] = {"status": 500, "n": seq}  # altered after it was hashed
        connection.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor_type, actor, action, person_id, purpose,"
                " details, prev_hash, hash) VALUES (:seq, :at, :actor_type, :actor, :action,"
                " :person_id, :purpose, :details, :prev_hash, :hash)"
            ),
            values
            | {
                "details": json.dumps(values["details"]),
                "hash": digest,
                "at": values["at"]
                if connection.dialect.name == "postgresql"
                else values["at"].strftime("%Y-%m-%d %H:%M:%S.%f"),
            },
        )
        prev = digest
    connection.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": count, "h": prev})
    return prev


@pytest.mark.parametrize("break_at", [None, 5], ids=["intact", "altered"])
def test_the_old_trail_becomes_the_first_leaves(
    database_url: str, tmp_path: Path, break_at: int | None
) -> None:
    hub = bootstrap(Settings(database_url=database_url, data_dir=tmp_path))
    config = alembic_config(hub.engine)
    with hub.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0011")
        head = _old_trail(connection, 12, break_at=break_at)
    with hub.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with unit_of_work(hub.session_factory) as session:  # the next append continues the order
        record(session, actor_type="system", actor="hub", action="policy.loaded")
    Sequencer(session_factory=hub.session_factory, origin="o.test/log", interval=1).step()
    with hub.session_factory() as session:
        rows = session.query(AuditRecord).order_by(AuditRecord.leaf_index).all()
        report = verify(session)
    assert report.ok and report.checked == 14, report.problems
    assert [r.seq for r in rows] == list(range(1, 15))
    assert [r.details.get("n") for r in rows[:12]] == list(range(1, 13))
    assert rows[13].action == "policy.loaded"
    carried = rows[12]
    assert carried.action == "audit.chain_carried_over"
    expected = {"records": 12, "head_hash": head, "intact": break_at is None}
    if break_at:
        expected["first_problem"] = f"row {break_at} altered"
    assert carried.details == expected
