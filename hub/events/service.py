"""Building events and recording which consumer has applied which one."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from hub import staged
from hub.db import table_of, utcnow
from hub.events.models import ProcessedEvent
from schemas.cloudevents import CloudEventAttributes
from schemas.events import dataschema
from schemas.messages import EventData


def attributes_for(event_type: str, data: EventData) -> CloudEventAttributes:
    """The CloudEvents attributes of an event, derived from its data; a type without a
    published schema raises ``UnpublishedEventType``."""
    return CloudEventAttributes(
        id=str(data.event_id),
        source=f"/partners/{data.acting_partner}",
        type=event_type,
        subject=str(data.referral_id) if data.referral_id else None,
        time=data.occurred_at,
        dataschema=dataschema(event_type),
        partitionkey=data.person_id,
    )


def already_processed(session: Session, *, consumer: str, event_id: str) -> bool:
    """True when ``consumer`` has already applied the event."""
    stmt = select(ProcessedEvent.event_id).where(
        ProcessedEvent.consumer == consumer, ProcessedEvent.event_id == event_id
    )
    return session.execute(stmt).first() is not None


def processed_among(session: Session, *, consumer: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` ``consumer`` has already applied (one query per 500 ids)."""
    found: set[str] = set()
    unique = sorted(set(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        found.update(session.scalars(_PROCESSED_AMONG, {"consumer": consumer, "ids": chunk}))
    return found


def mark_processed(session: Session, *, consumer: str, event_id: str) -> None:
    """Record the event as applied, in the same transaction as its effect."""
    session.add(ProcessedEvent(consumer=consumer, event_id=event_id))


def stage_processed(session: Session, *, consumer: str, event_id: str) -> None:
    """Like :func:`mark_processed`, as a Core row written with the transaction's other staged
    rows (hub.staged): for a consumer that never looks for its own marks before commit."""
    staged.stage(
        session,
        _PROCESSED,
        [{"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}],
    )


_PROCESSED = table_of(ProcessedEvent)
#: Built once, a Core statement: every consumer asks this for every poll, and constructing
#: the ORM's statement cost more than running it.
_PROCESSED_AMONG = select(_PROCESSED.c.event_id).where(
    _PROCESSED.c.consumer == bindparam("consumer"),
    _PROCESSED.c.event_id.in_(bindparam("ids", expanding=True)),
)
