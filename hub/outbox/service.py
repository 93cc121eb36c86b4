"""Writing events into the outbox, inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from hub import jsontext, staged, telemetry
from hub.db import table_of, utcnow
from hub.kafka.cloudevents import to_headers
from hub.outbox.models import OutboxEvent
from schemas.cloudevents import CloudEventAttributes

NOTIFY_CHANNEL = "hub_outbox"


@dataclass(slots=True)
class OutboxRow:
    """An outbox row to be staged (:func:`add_rows`): the columns an :class:`OutboxEvent`
    is written with. Not an ORM object: staged rows are written as Core rows, and an
    instance of the mapped class would cost its instrumentation on every attribute."""

    event_id: str
    topic: str
    key: str | None
    headers: list[list[str]]
    value: str
    replay: int = 0
    created_at: datetime | None = None


def add_event(
    session: Session, *, topic: str, attrs: CloudEventAttributes, data: BaseModel
) -> OutboxRow:
    """Stage an event for publication; it leaves only if the transaction commits."""
    row = OutboxRow(
        event_id=attrs.id,
        topic=topic,
        key=attrs.partitionkey,
        headers=[[name, value.decode()] for name, value in to_headers(attrs)],
        value=data.model_dump_json(),
    )
    return add_row(session, row)


def add_json(
    session: Session, *, topic: str, attrs: CloudEventAttributes, data: dict[str, Any]
) -> OutboxRow:
    """Stage an event whose data is already a JSON object (e.g. a recipient's projection)."""
    return add_row(session, json_row(topic=topic, attrs=attrs, data=data))


def json_row(*, topic: str, attrs: CloudEventAttributes, data: dict[str, Any]) -> OutboxRow:
    """An outbox row for JSON event data, not yet staged (see ``add_rows``)."""
    return OutboxRow(
        event_id=attrs.id,
        topic=topic,
        key=attrs.partitionkey,
        headers=[[name, value.decode()] for name, value in to_headers(attrs)],
        value=jsontext.text(data),
    )


def add_row(session: Session, row: OutboxRow) -> OutboxRow:
    """Stage a prepared outbox row (e.g. a replayed dead letter)."""
    add_rows(session, [row])
    return row


def add_rows(session: Session, rows: list[OutboxRow]) -> None:
    """Stage prepared outbox rows, in this order.

    Each row keeps the current trace context, so the relay's publish continues this trace.
    """
    if telemetry.tracing():
        for row in rows:
            with telemetry.span(
                f"outbox write {row.topic}",
                attributes={
                    "messaging.destination.name": row.topic,
                    "messaging.message.id": row.event_id,
                },
            ):
                row.headers = _untraced(row.headers) + telemetry.inject()
    else:
        # No spans recorded here: every row carries the context the work came with.
        context = telemetry.inject()
        for row in rows:
            row.headers = _untraced(row.headers) + context
    if not rows:
        return
    first = not session.info.get("outbox_written")
    session.info["outbox_written"] = True  # cleared at the end of the transaction
    # Staged as Core rows (hub.staged), never added to the session. The first rows of a
    # transaction are written at once, with whatever the transaction has staged before them
    # (a new referral, the call's audit record): one statement on PostgreSQL. Later rows go
    # with the next write, the next flush or the commit, in order: a consumer that records a
    # poll stages hundreds, which the ORM would make objects of and flush one by one. Until
    # written they are invisible to queries: whoever looks for an outbox row of its own
    # transaction writes them first (see ``visible``). The commit wakes the relay
    # (hub.bootstrap): in this process directly, in others by a NOTIFY sent after it
    # (hub.outbox.notify.Notifier).
    now = utcnow()
    staged.stage(
        session,
        _OUTBOX,
        [
            {
                "event_id": row.event_id,
                "topic": row.topic,
                "key": row.key,
                "headers": row.headers,
                "value": row.value,
                "created_at": row.created_at or now,
                "published_at": None,
                "settled_at": None,
                "replay": row.replay,
            }
            for row in rows
        ],
    )
    if first:
        staged.write(session)


def _untraced(headers: list[list[str]]) -> list[list[str]]:
    return [h for h in headers if h[0] not in ("traceparent", "tracestate")]


def visible(session: Session) -> None:
    """Write the outbox rows this transaction staged, before a query that must see them."""
    staged.write(session)


# The rows' ids are not read back: nothing in the transaction needs them, and asking for
# them in order would split the statement per row.
_OUTBOX = table_of(OutboxEvent)
