"""Partner API: the pull inbox."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response

from hub.api.deps import SessionDep, caller
from hub.api.problems import PROBLEM_RESPONSES
from hub.inbox import service
from hub.partners.models import Partner
from schemas.messages import InboxItem, InboxPage

router = APIRouter(prefix="/v1/inbox", tags=["inbox"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=InboxPage, summary="Fetch messages routed to you")
def read_inbox(
    session: SessionDep,
    partner: Annotated[Partner, Depends(caller("inbox:read"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> InboxPage:
    """Unacknowledged messages, oldest first; acknowledge each one once it is processed."""
    rows, next_cursor = service.pending(session, partner_id=partner.id, limit=limit, cursor=cursor)
    items = [
        InboxItem(
            event_id=UUID(r.event_id),
            event_type=r.event_type,
            referral_id=UUID(r.referral_id) if r.referral_id else None,
            received_at=r.received_at,
            data=service.opened_data(session, r),
        )
        for r in rows
    ]
    return InboxPage(items=items, next_cursor=next_cursor)


@router.post("/{event_id}/ack", status_code=204, summary="Acknowledge a message")
def ack_message(
    event_id: UUID,
    session: SessionDep,
    partner: Annotated[Partner, Depends(caller("inbox:read"))],
) -> Response:
    """Mark a message as processed; repeating the ack is harmless."""
    service.ack(session, partner_id=partner.id, event_id=str(event_id))
    return Response(status_code=204)
