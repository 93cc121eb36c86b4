"""Housekeeping: technical rows that have done their job are deleted.

Every table here would otherwise grow by a row per event for as long as the hub runs. A row
goes only once nothing can need it again:

- an outbox row once settled: every consumer that must apply it did (hub.outbox.settlement).
  An unsettled row is owed, to Kafka or to a consumer, and is never touched;
- a consumer's processed-event mark, which drops a repeat of an event it already applied,
  unless its event is still unsettled (it may be published again, and must be dropped again);
- a stored answer to an ``Idempotency-Key``, which answers a partner's retry;
- a pulled message its partner acknowledged;
- an expired staff session, an ended Mein Verfahren session, and an access code that was used,
  revoked or expired ``keep_days`` ago and linked no citizen login (the audit log keeps that
  it was issued and used).

The marks, answers and messages are kept ``keep_days`` (``HUB_HOUSEKEEPING_KEEP_DAYS``).
A repeat can reach a consumer as long as its record is in a topic: 30 days in the event and
delivery topics, 90 days for a dead letter replayed by staff (deploy/k8s/base/kafka-topics.yaml),
so the setting refuses fewer than 91 days. The outbox uses the same horizon, so an event's
mark never outlives the outbox row that the operations view compares it with.

Personal data is not housekeeping's business: ``hub retention`` shreds it per route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from hub.events.models import ProcessedEvent
from hub.inbox.models import InboxMessage
from hub.outbox.models import OutboxEvent
from hub.portal.models import CitizenLink, ClientInvite, ClientSession
from hub.portal.sessions import IDLE_MINUTES
from hub.referrals.models import IdempotencyRecord
from hub.web.models import StaffSession


@dataclass(frozen=True)
class Sweep:
    """One table's rows that have done their job, and the rule that says so."""

    table: str
    rows: int
    before: datetime


def _rules(now: datetime, keep_days: int) -> list[tuple[Any, ColumnElement[bool], datetime]]:
    horizon = now - timedelta(days=keep_days)
    return [
        (OutboxEvent, OutboxEvent.settled_at < horizon, horizon),
        (
            ProcessedEvent,
            (ProcessedEvent.processed_at < horizon)
            & ProcessedEvent.event_id.not_in(
                select(OutboxEvent.event_id).where(OutboxEvent.settled_at.is_(None))
            ),
            horizon,
        ),
        (IdempotencyRecord, IdempotencyRecord.created_at < horizon, horizon),
        (InboxMessage, InboxMessage.acked_at < horizon, horizon),
        (StaffSession, StaffSession.expires_at < now, now),
        (
            ClientSession,
            (ClientSession.expires_at < now)
            | (ClientSession.last_seen_at < now - timedelta(minutes=IDLE_MINUTES)),
            now,
        ),
        (
            ClientInvite,
            (
                func.coalesce(
                    ClientInvite.used_at, ClientInvite.revoked_at, ClientInvite.expires_at
                )
                < horizon
            )
            # A code that linked a citizen login stays while the link does: revoking the code
            # is what removes the link.
            & ClientInvite.id.not_in(select(CitizenLink.invite_id)),
            horizon,
        ),
    ]


def due(session: Session, *, now: datetime, keep_days: int) -> list[Sweep]:
    """What ``sweep`` would delete now, table by table, without changing anything."""
    return [
        Sweep(model.__tablename__, session.scalar(select(func.count()).where(rule)) or 0, before)
        for model, rule, before in _rules(now, keep_days)
    ]


def sweep(session: Session, *, now: datetime, keep_days: int) -> list[Sweep]:
    """Delete what has done its job; returns how many rows went, table by table.

    An event is marked only after it was published, and acknowledged only after it was
    marked or stored, so a mark or an acknowledged message old enough to go has an outbox
    row old enough to go too: the operations view never finds an outbox row whose mark is
    gone and counts it as still waiting."""
    done = []
    for model, rule, before in _rules(now, keep_days):
        result = session.execute(
            delete(model).where(rule).execution_options(synchronize_session=False)
        )
        done.append(Sweep(model.__tablename__, int(getattr(result, "rowcount", 0) or 0), before))
    return done
