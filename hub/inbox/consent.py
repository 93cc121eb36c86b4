"""Consent at the pull inbox: what rests on a withdrawn consent is not served from it.

The router's consent check (hub/routing/service.py) is repeated where a routed copy becomes
available to the partner: when the inbox consumer files it, and when the partner reads its
inbox. A copy whose consent is gone is held like the router holds an event, so that a
release after a new consent puts it back (once: same event id). An unacknowledged item is
taken out of the inbox: its row, with the personal data, is deleted; the audit keeps who
was to get which event on which basis, and when it was withdrawn. What the partner has
acknowledged is its own record and stays untouched (Art. 7(3) GDPR).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.deliveries.service import audit_delivery
from hub.errors import NotFound
from hub.inbox import service
from hub.inbox.models import InboxMessage
from hub.policy.model import Policy
from hub.routing import service as routing
from schemas.cloudevents import CloudEventAttributes

_ROUTE_OF_PERSON = ("person_id", "requester", "performer", "referral_type")


def receive(
    session: Session, *, policy: Policy, attrs: CloudEventAttributes, recipient: str, data: Any
) -> None:
    """File a routed event in its recipient's inbox, or hold it when its consent is gone."""
    reason = routing.withheld(session, policy, event_id=attrs.id, recipient=recipient, data=data)
    if reason is not None:
        routing.hold(session, attrs=attrs, data=data, recipient=recipient, reason=reason)
        return
    service.put(
        session,
        partner_id=recipient,
        event_id=attrs.id,
        event_type=attrs.type,
        referral_id=attrs.subject,
        data=data,
    )


def pending(
    session: Session, *, policy: Policy, partner_id: str, limit: int, cursor: str | None
) -> tuple[list[InboxMessage], str | None]:
    """Unacknowledged messages the partner may still have, oldest first, after ``cursor``.

    A page can come back shorter than ``limit`` (even empty, with a cursor) when items on
    it were withdrawn just now; the cursor goes on from there.
    """
    rows, next_cursor = service.pending(session, partner_id=partner_id, limit=limit, cursor=cursor)
    gone = withdraw_unconsented(session, policy=policy, rows=rows)
    return [r for r in rows if r.id not in gone], next_cursor


def withdraw_for_person(
    session: Session, *, policy: Policy, person_id: str, partners: list[str]
) -> int:
    """Take the person's unacknowledged items whose consent is gone out of these inboxes."""
    stmt = select(InboxMessage).where(
        InboxMessage.partner_id.in_(partners), InboxMessage.acked_at.is_(None)
    )
    rows = [m for m in session.scalars(stmt) if m.data.get("person_id") == person_id]
    return len(withdraw_unconsented(session, policy=policy, rows=rows))


def withdraw_unconsented(session: Session, *, policy: Policy, rows: list[InboxMessage]) -> set[int]:
    """Hold and delete the unacknowledged ``rows`` whose consent is gone; their ids."""
    gone: set[int] = set()
    reasons: dict[tuple[str, ...], str | None] = {}  # one consent lookup per person and route
    for row in rows:
        if row.acked_at is not None:
            continue
        key = tuple(str(row.data.get(k)) for k in _ROUTE_OF_PERSON)
        if key not in reasons:
            reasons[key] = routing.withheld_reason(session, policy, row.data)
        reason = reasons[key]
        if reason is None:
            continue
        routing.hold(
            session, attrs=_attributes(row), data=row.data, recipient=row.partner_id, reason=reason
        )
        audit_delivery(
            session,
            "delivery.withdrawn",
            row.partner_id,
            row.event_id,
            row.event_type,
            row.referral_id,
            row.data,
            reason=reason,
        )
        session.delete(row)
        gone.add(row.id)
    return gone


def ack(session: Session, *, policy: Policy, partner_id: str, event_id: str) -> None:
    """Acknowledge a message; one withdrawn from the inbox answers why it is gone."""
    try:
        service.ack(session, partner_id=partner_id, event_id=event_id)
    except NotFound:
        hold = routing.held(session, event_id=event_id, recipient=partner_id)
        if hold is not None:
            routing.require_consent(session, policy, hold.data)
        raise


def _attributes(row: InboxMessage) -> CloudEventAttributes:
    """The attributes of the routed event an inbox row was filed from."""
    d = row.data
    occurred = d.get("occurred_at")
    return CloudEventAttributes(
        id=row.event_id,
        source=f"/partners/{d.get('acting_partner')}",
        type=row.event_type,
        subject=row.referral_id,
        time=datetime.fromisoformat(occurred) if isinstance(occurred, str) else row.received_at,
        partitionkey=d.get("person_id"),
        extensions={"recipient": row.partner_id},
    )
