"""Partner API: a person's timeline."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path

from hub.api.deps import SessionDep, caller
from hub.api.problems import PROBLEM_RESPONSES
from hub.partners.models import Partner
from hub.timeline import service
from schemas.messages import Timeline, TimelineEntry

router = APIRouter(prefix="/v1/people", tags=["timeline"], responses=PROBLEM_RESPONSES)


@router.get("/{person_id}/timeline", response_model=Timeline, summary="A person's timeline")
def read_timeline(
    person_id: Annotated[str, Path(max_length=70)],
    session: SessionDep,
    partner: Annotated[Partner, Depends(caller("timeline:read"))],
) -> Timeline:
    """Entries across partners for the referrals you take part in, oldest first."""
    rows = service.timeline_for_partner(session, person_id=person_id, viewer=partner.id)
    entries = [
        TimelineEntry(
            event_id=UUID(r.event_id),
            event_type=r.event_type,
            source_partner=r.source_partner,
            referral_id=UUID(r.referral_id) if r.referral_id else None,
            referral_type=r.referral_type,
            status=r.status,
            business_status=r.business_status,
            purpose=r.purpose,
            occurred_at=r.occurred_at,
            recorded_at=r.recorded_at,
        )
        for r in rows
    ]
    return Timeline(person_id=person_id, entries=entries)
