"""Partner API: the pull inbox."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from hub.api.deps import PolicyDep, SessionDep, audit_read, caller
from hub.inbox import consent, service
from hub.partners.models import Partner
from schemas.messages import InboxItem, InboxPage

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])


@router.get("", response_model=InboxPage, summary="Fetch messages routed to you")
def read_inbox(
    request: Request,
    session: SessionDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("inbox:read"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=service.CURSOR_PATTERN)] = None,
) -> InboxPage:
    """Unacknowledged messages, oldest first; acknowledge each one once it is processed.

    A message that rests on a consent withdrawn since is no longer served (acknowledging it
    answers why)."""
    rows, next_cursor = consent.pending(
        session, policy=policy, partner_id=partner.id, limit=limit, cursor=cursor
    )
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
    touched = [(r.data.get("person_id"), r.referral_id) for r in rows]
    audit_read(session, request, partner.id, touched)
    return InboxPage(items=items, next_cursor=next_cursor)


@router.post("/{event_id}/ack", status_code=204, summary="Acknowledge a message")
def ack_message(
    event_id: UUID,
    session: SessionDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("inbox:read"))],
) -> Response:
    """Mark a message as processed; repeating the ack is harmless."""
    consent.ack(session, policy=policy, partner_id=partner.id, event_id=str(event_id))
    return Response(status_code=204)
