"""The audit trail: appends chain, and verify names every row someone altered or removed."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from hub.audit.models import AuditHead, AuditRecord
from hub.audit.service import chain_hash, list_records, record, verify
from hub.bootstrap import Hub
from hub.db import unit_of_work
from tests.hubtest import make_hub

CONTENT = ("at", "actor_type", "actor", "action", "person_id", "purpose", "details")


def _head(hub: Hub) -> int:
    with hub.session_factory() as session:
        return int(session.scalars(select(AuditHead.seq)).one())


def _append(hub: Hub, count: int, per_transaction: int = 7) -> int:
    """Append ``count`` records in several transactions; returns the seq before the first."""
    base = _head(hub)
    for start in range(0, count, per_transaction):
        with unit_of_work(hub.session_factory) as session:
            for i in range(start, min(start + per_transaction, count)):
                record(
                    session,
                    actor_type="partner",
                    actor="ude",
                    action="api.call",
                    person_id=f"p_{i % 5}",
                    purpose="education",
                    details={"method": "GET", "route": "/v1/referrals/{id}", "status": 200, "i": i},
                )
    return base


def _verify(hub: Hub, batch: int = 7) -> Any:
    with hub.session_factory() as session:
        return verify(session, batch=batch)


def _named(problems: list[str]) -> list[int]:
    """The seq each problem starts with."""
    named = []
    for problem in problems:
        match = re.match(r"rows? (\d+)", problem)
        assert match, problem
        named.append(int(match.group(1)))
    return named


def _row(hub: Hub, seq: int) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        row = conn.execute(select(AuditRecord.__table__).where(AuditRecord.seq == seq)).one()
    return dict(row._mapping)


def _set(hub: Hub, seq: int, **values: Any) -> None:
    with hub.engine.begin() as conn:
        conn.execute(update(AuditRecord).where(AuditRecord.seq == seq).values(**values))


def _delete(hub: Hub, seq: int) -> None:
    with hub.engine.begin() as conn:
        conn.execute(delete(AuditRecord).where(AuditRecord.seq == seq))


def _edit(hub: Hub, base: int) -> list[int]:
    _set(hub, base + 17, details={"method": "GET", "route": "/v1/referrals", "status": 500})
    return [base + 17]


def _delete_middle(hub: Hub, base: int) -> list[int]:
    _delete(hub, base + 18)
    return [base + 18]


def _swap(first: int, second: int) -> Callable[[Hub, int], list[int]]:
    def tamper(hub: Hub, base: int) -> list[int]:
        a, b = _row(hub, base + first), _row(hub, base + second)
        keep = ("seq",)
        _set(hub, base + first, **{k: v for k, v in b.items() if k not in keep})
        _set(hub, base + second, **{k: v for k, v in a.items() if k not in keep})
        return [base + first, base + second]

    return tamper


def _delete_last(hub: Hub, base: int) -> list[int]:
    _delete(hub, base + 50)
    return [base + 50]


def _rehash(hub: Hub, base: int) -> list[int]:
    forged = _row(hub, base + 23) | {"actor": "amt", "details": {"status": 204}}
    _set(hub, base + 23, actor="amt", details={"status": 204}, hash=chain_hash(forged))
    return [base + 23]


def _rehash_last(hub: Hub, base: int) -> list[int]:
    forged = _row(hub, base + 50) | {"action": "api.noop"}
    _set(hub, base + 50, action="api.noop", hash=chain_hash(forged))
    return [base + 50]


TAMPERING = {
    "edit details": _edit,
    "delete a middle row": _delete_middle,
    "swap two rows": _swap(20, 30),
    "swap neighbours": _swap(31, 32),
    "delete the last row": _delete_last,
    "re-hash an edited row": _rehash,
    "re-hash the last row": _rehash_last,
}


def test_appends_in_several_transactions_form_an_intact_chain(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    base = _append(hub, 50)
    report = _verify(hub)
    assert report.ok, report.problems
    assert report.checked == base + 50
    with hub.session_factory() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
    assert [r.seq for r in rows] == list(range(1, base + 51))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(rows))


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=TAMPERING.keys())
def test_verify_names_the_tampered_row(
    hub_and_partners: Any, tamper: Callable[[Hub, int], list[int]]
) -> None:
    hub = hub_and_partners[0]
    base = _append(hub, 50)
    expected = tamper(hub, base)
    report = _verify(hub)
    assert not report.ok
    assert _named(report.problems) == expected, report.problems


def test_verify_messages_say_what_happened(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    base = _append(hub, 50)
    _edit(hub, base)
    _delete_middle(hub, base)
    _delete(hub, base + 50)
    _delete(hub, base + 49)
    s = base + 17
    assert _verify(hub, batch=1000).problems == [
        f"row {s}: content does not match its hash",
        f"row {s + 1} missing: row {s + 2} follows row {s}",
        f"rows {base + 49}-{base + 50} missing: head says seq {base + 50}, last row is {base + 48}",
    ]


def test_a_rolled_back_append_leaves_no_record_and_no_gap(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    base = _append(hub, 3)
    with pytest.raises(RuntimeError), unit_of_work(hub.session_factory) as session:
        record(session, actor_type="staff", actor="s_17", action="staff.view", person_id="p_9")
        raise RuntimeError("the request failed after auditing")
    assert _head(hub) == base + 3
    _append(hub, 1)
    with hub.session_factory() as session:
        assert list_records(session, person_id="p_9") == []
        assert [r.seq for r in list_records(session, limit=2)] == [base + 3, base + 4]
    assert _verify(hub).ok


def test_concurrent_appenders_queue_up(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    base = _head(hub)
    errors: list[BaseException] = []

    def append() -> None:
        try:
            _append(hub, 10, per_transaction=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = _verify(hub)
    assert report.ok, report.problems
    assert report.checked == base + 40


@pytest.mark.parametrize(
    "details",
    [
        {"given_name": "Wei"},
        {"person": {"familyName": "Li"}},
        {"people": [{"ids": ["p_1"]}, {"Birth-Date": "2001-04-03"}]},
        {"partner_reference": "ES012345601"},
        {"refs": {"Matrikelnummer": "3012345"}},
        {"note": "called about the appointment"},
    ],
)
def test_personal_fields_are_refused_at_any_depth(
    hub_and_partners: Any, details: dict[str, Any]
) -> None:
    hub = hub_and_partners[0]
    base = _head(hub)
    with pytest.raises(ValueError, match="personal data"), hub.session_factory() as session:
        record(session, actor_type="system", actor="router", action="delivery.delivered",
               details=details)  # fmt: skip
    assert _head(hub) == base


def test_ids_codes_and_counts_are_accepted(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    with unit_of_work(hub.session_factory) as session:
        entry = record(
            session,
            actor_type="partner",
            actor="amt",
            action="consent.withdrawn",
            person_id="p_abc",
            purpose="counselling",
            details={"referral_id": "r_1", "code": "PERMIT_GRANTED", "count": 2, "name_id": 1},
        )
    assert entry.hash == chain_hash(entry.as_dict() | {"at": entry.at})
    with pytest.raises(ValueError, match="actor_type"), hub.session_factory() as session:
        record(session, actor_type="admin", actor="x", action="api.call")


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_verify_command_names_the_tampered_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub, _ = make_hub(url, tmp_path)
    base = _append(hub, 50)
    hub.engine.dispose()
    env = os.environ | {"HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(tmp_path)}

    intact = _cli(env, "verify")
    assert intact.returncode == 0, intact.stderr
    assert f"audit trail intact: {base + 50} records" in intact.stdout
    shown = _cli(env, "show", "--person", "p_3", "--limit", "2")
    assert shown.returncode == 0, shown.stderr
    assert [line.count('"person_id": "p_3"') for line in shown.stdout.splitlines()] == [1, 1]

    _edit(hub, base)
    hub.engine.dispose()
    broken = _cli(env, "verify")
    assert broken.returncode == 1
    assert f"row {base + 17}: content does not match its hash" in broken.stdout
