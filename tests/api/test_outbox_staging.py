"""Outbox rows are staged (hub.staged), in every transaction, on SQLite and PostgreSQL.

The first rows of a transaction are written at once, later ones with the next write, flush or
the commit; until then a query does not see them, unless the code that looks writes them
first (``hub.outbox.service.visible``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import staged
from hub.bootstrap import Hub
from hub.db import table_of, unit_of_work
from hub.deliveries.service import outcome_event_id, record_rejected
from hub.outbox.models import OutboxEvent
from hub.outbox.service import add_json, visible
from schemas.cloudevents import CloudEventAttributes, EventType

AT = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def attributes(event_id: str, person_id: str) -> CloudEventAttributes:
    return CloudEventAttributes(
        id=event_id,
        source="/partners/amt",
        type=EventType.REFERRAL_REQUESTED,
        time=AT,
        subject=str(uuid.uuid4()),
        partitionkey=person_id,
    )


def outbox_rows(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def test_later_rows_are_staged_and_written_at_commit_or_when_asked(hub: Hub) -> None:
    with unit_of_work(hub.session_factory) as session:
        for n in range(3):
            attrs = attributes(str(uuid.uuid4()), f"p{n}")
            add_json(session, topic="hub.events.v1", attrs=attrs, data={"n": n})
        assert outbox_rows(session) == 1, "the first row is written at once, the others staged"
        assert len(staged.pending(session, table_of(OutboxEvent))) == 2
        visible(session)
        assert outbox_rows(session) == 3
        add_json(session, topic="hub.events.v1", attrs=attributes("last", "p3"), data={"n": 3})
    with hub.session_factory() as session:
        values = session.scalars(select(OutboxEvent.value).order_by(OutboxEvent.id)).all()
    assert values == ['{"n":0}', '{"n":1}', '{"n":2}', '{"n":3}'], "all committed, in order"


def test_a_failure_staged_earlier_in_the_poll_is_recorded_once(hub: Hub) -> None:
    # A poll may hold one message twice (at-least-once): the second refusal must find the
    # failure event the first one staged in the same transaction, not write it again.
    person_id, event_id = "p-1", str(uuid.uuid4())
    data = {
        "event_id": event_id,
        "referral_id": str(uuid.uuid4()),
        "person_id": person_id,
        "acting_partner": "amt",
        "occurred_at": AT.isoformat(),
        "recorded_at": AT.isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "referral_type": "recognition.professional",
    }
    with unit_of_work(hub.session_factory) as session:
        # An earlier outcome of the poll: the failures below are then staged, not written.
        add_json(session, topic="hub.events.v1", attrs=attributes("x", "p-0"), data={})
        for _ in range(2):
            record_rejected(
                session,
                partner_id="ihk-fosa",
                attrs=attributes(event_id, person_id),
                data=data,
                reason="HTTP 400",
                status_code=400,
                settings=hub.settings,
            )
    failure = str(outcome_event_id("failed", partner_id="ihk-fosa", event_id=event_id))
    with hub.session_factory() as session:
        written = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.event_id == failure)
        )
    assert written == 1
