"""Appending to the audit trail, and proving that nobody altered, removed or reordered it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hub.audit.models import GENESIS_HASH, AuditHead, AuditRecord
from hub.db import utcnow

ACTOR_TYPES = frozenset({"partner", "staff", "system"})
_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# The trail outlives erasure (Art. 17 GDPR does not reach the controller's proof of
# accountability), so it must never hold what erasure is meant to remove. Names are compared
# without case, "_" or "-" so that ``givenName`` or ``Family-Name`` are refused too.
PERSONAL_FIELDS = frozenset(
    {
        "givenname",
        "familyname",
        "birthdate",
        "name",
        "partnerreference",
        "matrikelnummer",
        "kundennummer",
        "aktenzeichen",
        "note",
    }
)
# Keyset pages: verifying a million rows holds one page in memory, not the trail.
BATCH = 1000
HASHED_FIELDS = (
    "seq",
    "at",
    "actor_type",
    "actor",
    "action",
    "person_id",
    "purpose",
    "details",
    "prev_hash",
)


@dataclass
class VerifyReport:
    """The outcome of walking the trail; every problem starts with the seq it concerns."""

    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)


def record(
    session: Session,
    *,
    actor_type: str,
    actor: str,
    action: str,
    person_id: str | None = None,
    purpose: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Append one record inside the caller's transaction; a rollback removes it, leaving no gap."""
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"actor_type must be one of {sorted(ACTOR_TYPES)}, not {actor_type!r}")
    if not _ACTION.fullmatch(action):
        raise ValueError(f"action must be dotted lower-case words, not {action!r}")
    clean = json.loads(_canonical(dict(details or {})))
    _refuse_personal(clean, "details")
    seq, prev_hash = _lock_head(session)
    values: dict[str, Any] = {
        "seq": seq + 1,
        "at": utcnow(),
        "actor_type": actor_type,
        "actor": actor,
        "action": action,
        "person_id": person_id,
        "purpose": purpose,
        "details": clean,
        "prev_hash": prev_hash,
    }
    entry = AuditRecord(**values, hash=chain_hash(values))
    session.add(entry)
    session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=entry.seq, hash=entry.hash)
    )
    session.flush()
    return entry


def chain_hash(values: Mapping[Any, Any]) -> str:
    """SHA-256 (hex) of a record's canonical JSON, its predecessor's hash included."""
    content = {name: values[name] for name in HASHED_FIELDS}
    content["at"] = _rfc3339(values["at"])
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


def list_records(
    session: Session, *, person_id: str | None = None, limit: int = 100
) -> list[AuditRecord]:
    """The newest ``limit`` records, optionally about one person, oldest first."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)
    if person_id is not None:
        query = query.where(AuditRecord.person_id == person_id)
    return list(reversed(session.scalars(query).all()))


def verify(session: Session, *, batch: int = BATCH) -> VerifyReport:
    """Walk the trail in seq order and report every row whose content or link was altered."""
    problems: list[str] = []
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    if head is None:
        problems.append("row 0: the audit head is missing, the trail's length cannot be proven")
    # Rows past the head read here are later appends (PostgreSQL reads each statement afresh).
    upto = head.seq if head is not None else None
    last: _Link | None = None
    checked = 0
    for row in _rows(session, batch, upto):
        checked += 1
        last = _check_row(row, last, problems)
    if head is not None:
        _check_tail(head.seq, head.hash, last, problems)
    _check_beyond_head(session, problems)
    return VerifyReport(ok=not problems, checked=checked, problems=problems)


class _Link(NamedTuple):
    seq: int
    hash: str
    altered: bool


def _check_row(row: Row[Any], prev: _Link | None, problems: list[str]) -> _Link:
    seq = row.seq
    expected = prev.seq + 1 if prev else 1
    if seq < expected:
        problems.append(f"row {seq}: seq below 1, no such row is ever appended")
    elif seq > expected:
        after = f"row {seq} follows row {prev.seq}" if prev else f"row {seq} is the first"
        problems.append(_missing(expected, seq - 1, after))
    if chain_hash(row._mapping) != row.hash:
        problems.append(f"row {seq}: content does not match its hash")
        return _Link(seq, row.hash, altered=True)
    # After a gap or an altered predecessor the broken link is a consequence, already reported.
    if seq == expected and not (prev and prev.altered):
        if prev is None and row.prev_hash != GENESIS_HASH:
            problems.append(f"row {seq}: prev_hash is not the genesis hash")
        elif prev is not None and row.prev_hash != prev.hash:
            problems.append(
                f"row {prev.seq}: its hash does not match row {seq}'s prev_hash "
                f"(row {prev.seq} re-hashed, or row {seq} moved or forged)"
            )
    return _Link(seq, row.hash, altered=False)


def _check_tail(head_seq: int, head_hash: str, last: _Link | None, problems: list[str]) -> None:
    last_seq = last.seq if last else 0
    if head_seq > last_seq:
        why = f"head says seq {head_seq}, last row is {last_seq}"
        problems.append(_missing(last_seq + 1, head_seq, why))
    elif last is None and head_hash != GENESIS_HASH:
        problems.append("row 0: the head of an empty trail does not hold the genesis hash")
    elif last is not None and not last.altered and last.hash != head_hash:
        problems.append(f"row {last.seq}: its hash does not match the head's (re-hashed)")


def _check_beyond_head(session: Session, problems: list[str]) -> None:
    # One statement, one snapshot: an append commits its row and the head together.
    head_seq = select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery()
    first = session.scalar(select(func.min(AuditRecord.seq)).where(AuditRecord.seq > head_seq))
    if first is not None:
        problems.append(f"row {first}: beyond the head, added without appending")


def _rows(session: Session, batch: int, upto: int | None) -> Iterator[Row[Any]]:
    after: int | None = None
    while True:
        query = select(AuditRecord.__table__).order_by(AuditRecord.seq).limit(batch)
        if after is not None:
            query = query.where(AuditRecord.seq > after)
        if upto is not None:
            query = query.where(AuditRecord.seq <= upto)
        page = session.execute(query).all()
        yield from page
        if len(page) < batch:
            return
        after = page[-1].seq


def _missing(first: int, last: int, why: str) -> str:
    rows = f"row {first}" if first == last else f"rows {first}-{last}"
    return f"{rows} missing: {why}"


def _lock_head(session: Session) -> tuple[int, str]:
    # FOR UPDATE queues concurrent appenders on PostgreSQL; SQLite's BEGIN IMMEDIATE already
    # admits one writer at a time.
    query = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
    head = session.execute(query).first()
    if head is None:
        _create_head(session)
        head = session.execute(query).one()
    return head.seq, head.hash


def _create_head(session: Session) -> None:
    """Databases built with ``create_all`` instead of the migrations have no head yet."""
    if session.scalar(select(func.count()).select_from(AuditRecord)):
        raise RuntimeError("the audit head is missing but the trail is not empty; verify it")
    values = {"id": 1, "seq": 0, "hash": GENESIS_HASH}
    # Two first appenders may race; the loser's insert does nothing and it waits on the lock.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql.insert(AuditHead).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(AuditHead).values(values).on_conflict_do_nothing())


def _refuse_personal(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if re.sub(r"[_\-\s]", "", key).lower() in PERSONAL_FIELDS:
                raise ValueError(f"{path}.{key}: personal data must not enter the audit log")
            _refuse_personal(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _refuse_personal(inner, f"{path}[{index}]")


def _canonical(value: Any) -> str:
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except TypeError as exc:
        raise ValueError(f"audit details must be plain JSON: {exc}") from exc


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
