"""Turning stored referrals into the API's views."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from hub.referrals.models import Referral
from hub.routing.models import RoutingHold
from schemas.lifecycle import Status
from schemas.messages import (
    ClockView,
    ReferralSummary,
    ReferralView,
    RoutingHoldView,
    StatusEntry,
)


def view_of(
    referral: Referral,
    payload: dict[str, Any],
    holds: list[RoutingHold] | None = None,
    clocks: list[ClockView] | None = None,
) -> ReferralView:
    """The full view of a referral (with its decrypted payload), history and held deliveries."""
    return ReferralView(
        clocks=clocks or [],
        holds=[
            RoutingHoldView(
                event_id=UUID(h.event_id), recipient=h.recipient, reason=h.reason, held_at=h.held_at
            )
            for h in holds or []
        ],
        **summary_of(referral).model_dump(),
        payload=payload,
        history=[
            StatusEntry(
                status=Status(h.status),
                business_status=h.business_status,
                reason=h.reason,
                outcome=h.outcome,
                set_by=h.set_by,
                occurred_at=h.occurred_at,
                recorded_at=h.recorded_at,
                event_id=UUID(h.event_id),
            )
            for h in referral.history
        ],
    )


def summary_of(referral: Referral) -> ReferralSummary:
    """The list view of a referral."""
    return ReferralSummary(
        id=UUID(referral.id),
        type=referral.type,
        requester=referral.requester_id,
        performer=referral.performer_id,
        person_id=referral.person_id,
        status=Status(referral.status),
        business_status=referral.business_status,
        created_at=referral.created_at,
        updated_at=referral.updated_at,
    )
