"""The pull inbox of a partner: filled by the delivery consumer, read and acked by the partner."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.crypto.fields import open_event
from hub.db import utcnow
from hub.deliveries.service import audit_delivery
from hub.errors import InvalidInput, NotFound
from hub.inbox.models import InboxMessage


def consumer_name(partner_id: str) -> str:
    """The name under which a copy filed into ``partner_id``'s inbox is marked applied."""
    return f"inbox.{partner_id}"


def put(
    session: Session,
    *,
    partner_id: str,
    event_id: str,
    event_type: str,
    referral_id: str | None,
    data: dict[str, Any],
) -> None:
    """Place one routed event in a partner's inbox, once (a copy filed already stays)."""
    filed = select(InboxMessage.id).where(
        InboxMessage.partner_id == partner_id, InboxMessage.event_id == event_id
    )
    if session.scalars(filed.limit(1)).first() is not None:
        return
    audit_delivery(session, "delivery.inbox", partner_id, event_id, event_type, referral_id, data)
    session.add(
        InboxMessage(
            partner_id=partner_id,
            event_id=event_id,
            event_type=event_type,
            referral_id=referral_id,
            data=data,
        )
    )


#: An inbox cursor: the id of the last message seen, in ASCII digits. The route's query
#: parameter declares the same pattern.
CURSOR_PATTERN = r"^[0-9]{1,18}$"
#: The largest id the column holds (INTEGER on PostgreSQL): a cursor past it finds nothing.
MAX_ID = 2**31 - 1


def pending(
    session: Session, *, partner_id: str, limit: int, cursor: str | None
) -> tuple[list[InboxMessage], str | None]:
    """Unacknowledged messages, oldest first, after ``cursor``."""
    stmt = select(InboxMessage).where(
        InboxMessage.partner_id == partner_id, InboxMessage.acked_at.is_(None)
    )
    if cursor:
        if not re.fullmatch(CURSOR_PATTERN, cursor):  # not isdigit(): "²".isdigit() is True
            raise InvalidInput("cursor is not valid", field="cursor")
        stmt = stmt.where(InboxMessage.id > min(int(cursor), MAX_ID))
    rows = list(session.scalars(stmt.order_by(InboxMessage.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], str(rows[limit - 1].id)
    return rows, None


def opened_data(session: Session, message: InboxMessage) -> dict[str, Any]:
    """A message's data with its personal fields decrypted for its recipient."""
    person_id = message.data.get("person_id")
    return open_event(session, person_id, message.data) if person_id else message.data


def ack(session: Session, *, partner_id: str, event_id: str) -> None:
    """Mark a message as taken; acking twice is harmless."""
    stmt = select(InboxMessage).where(
        InboxMessage.partner_id == partner_id, InboxMessage.event_id == event_id
    )
    message = session.scalars(stmt).first()
    if message is None:
        raise NotFound(f"no message {event_id} in your inbox")
    if message.acked_at is None:
        message.acked_at = utcnow()
