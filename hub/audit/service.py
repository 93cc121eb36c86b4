"""Appending to the audit log: one leaf per effect, in the effect's transaction."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from hub import staged
from hub.audit.models import AuditRecord
from hub.db import table_of, utcnow

ACTOR_TYPES = frozenset({"partner", "staff", "system", "client"})
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
LEAF_FIELDS = (
    "seq",
    "at",
    "actor_type",
    "actor",
    "action",
    "person_id",
    "purpose",
    "details",
    "leaf_index",
)


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
    """Append one record inside the caller's transaction; it exists only if that commits."""
    entry = AuditRecord(**_values(actor_type, actor, action, person_id, purpose, details))
    # No lock and no read: the leaf is one INSERT in the caller's transaction, and the
    # sequencer gives it its place in the tree once it has committed (hub.audit.sequencer).
    session.add(entry)
    return entry


def record_at_commit(
    session: Session,
    *,
    actor_type: str,
    actor: str,
    action: str,
    person_id: str | None = None,
    purpose: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Like :func:`record`, for a record nothing reads back before commit: written as Core
    rows with the transaction's other staged rows (hub.staged), at the latest at commit.

    For the record of every partner call and every delivery: the ORM's flush of an
    :class:`AuditRecord` costs several times the statement itself.
    """
    # Staged: written with the transaction's other staged rows (one statement on PostgreSQL),
    # at the latest when it commits; dropped with it on rollback.
    staged.stage(
        session,
        *record_rows(
            actor_type=actor_type,
            actor=actor,
            action=action,
            person_id=person_id,
            purpose=purpose,
            details=details,
        ),
    )


def record_rows(
    *,
    actor_type: str,
    actor: str,
    action: str,
    person_id: str | None = None,
    purpose: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> tuple[Table, list[dict[str, Any]]]:
    """The rows :func:`record_at_commit` stages, for a caller that has no session yet: it
    stages them (``hub.staged.stage``) in the transaction of the effect they record."""
    return _TABLE, [_values(actor_type, actor, action, person_id, purpose, details)]


_TABLE = table_of(AuditRecord)


def _values(
    actor_type: str,
    actor: str,
    action: str,
    person_id: str | None,
    purpose: str | None,
    details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"actor_type must be one of {sorted(ACTOR_TYPES)}, not {actor_type!r}")
    if not _ACTION.fullmatch(action):
        raise ValueError(f"action must be dotted lower-case words, not {action!r}")
    clean = _plain(details or {})
    _refuse_personal(clean, "details")
    return {
        "at": utcnow(),
        "actor_type": actor_type,
        "actor": actor,
        "action": action,
        "person_id": person_id,
        "purpose": purpose,
        "details": clean,
    }


def leaf_bytes(values: Mapping[Any, Any]) -> bytes:
    """A record's canonical form, the data of its Merkle leaf: sorted-key compact UTF-8 JSON
    of ``LEAF_FIELDS``, the time as RFC 3339 UTC with microseconds."""
    content = {name: values[name] for name in LEAF_FIELDS}
    content["at"] = _rfc3339(values["at"])
    return _canonical(content).encode()


def list_records(
    session: Session, *, person_id: str | None = None, limit: int = 100
) -> list[AuditRecord]:
    """The newest ``limit`` records, optionally about one person, oldest first."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)
    if person_id is not None:
        query = query.where(AuditRecord.person_id == person_id)
    return list(reversed(session.scalars(query).all()))


def _plain(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as stored: plain JSON, keys sorted. Text under text keys (an API call's
    method and route) is that already; anything else goes through JSON and back."""
    if all(type(key) is str and type(value) is str for key, value in details.items()):
        return dict(sorted(details.items()))
    loaded: dict[str, Any] = json.loads(_canonical(dict(details)))
    return loaded


@functools.lru_cache(maxsize=1024)  # the same few keys on every record
def _bare(key: str) -> str:
    return re.sub(r"[_\-\s]", "", key).lower()


def _refuse_personal(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if _bare(key) in PERSONAL_FIELDS:
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
