"""Partner API: a person's timeline."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request

from hub.api.deps import PolicyDep, SessionDep, audit_read, caller
from hub.partners.models import Partner
from hub.timeline import service
from schemas.messages import Timeline, TimelineEntry

router = APIRouter(prefix="/v1/people", tags=["timeline"])


@router.get("/{person_id}/timeline", response_model=Timeline, summary="A person's timeline")
def read_timeline(
    person_id: Annotated[str, Path(max_length=70)],
    request: Request,
    session: SessionDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("timeline:read"))],
) -> Timeline:
    """Entries across partners for the referrals you take part in, oldest first.

    Business status codes set by the other side show only where your route shares them."""
    rows = service.timeline_for_partner(
        session, person_id=person_id, viewer=partner.id, policy=policy
    )
    entries = [
        TimelineEntry(
            event_id=UUID(r.entry.event_id),
            event_type=r.entry.event_type,
            source_partner=r.entry.source_partner,
            referral_id=UUID(r.entry.referral_id) if r.entry.referral_id else None,
            referral_type=r.entry.referral_type,
            status=r.entry.status,
            business_status=r.business_status,
            purpose=r.entry.purpose,
            occurred_at=r.entry.occurred_at,
            recorded_at=r.entry.recorded_at,
        )
        for r in rows
    ]
    audit_read(session, request, partner.id, [(person_id, r.entry.referral_id) for r in rows])
    return Timeline(person_id=person_id, entries=entries)
