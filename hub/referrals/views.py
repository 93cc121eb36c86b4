"""Turning stored referrals into the API's views.

A partner reads the other side's status changes as the router sends them: a business status
code, outcome or note its route does not share is left out (hub/policy/projection.py). Its
own changes it reads in full.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.orm import object_session

from hub.policy.model import Party, Policy, StatusShare
from hub.policy.parties import share_between
from hub.policy.projection import shared_status
from hub.referrals.models import Referral, StatusHistory
from hub.routing.models import RoutingHold
from schemas.lifecycle import TRANSITIONS, Role, Status
from schemas.messages import (
    ClockView,
    ReferralSummary,
    ReferralView,
    RoutingHoldView,
    StatusEntry,
)

#: Statuses only the requester sets; every other status after ``requested`` is the performer's.
_SET_BY_REQUESTER = frozenset(
    {Status.REQUESTED} | {to for (_, to), role in TRANSITIONS.items() if role == Role.REQUESTER}
)


def view_of(
    referral: Referral,
    payload: dict[str, Any],
    holds: list[RoutingHold] | None = None,
    clocks: list[ClockView] | None = None,
    *,
    viewer: str,
    policy: Policy,
) -> ReferralView:
    """The view ``viewer`` has of a referral: payload, history and held deliveries."""
    share = _share(referral, viewer, policy)
    return ReferralView(
        clocks=clocks or [],
        holds=[
            RoutingHoldView(
                event_id=UUID(h.event_id), recipient=h.recipient, reason=h.reason, held_at=h.held_at
            )
            for h in holds or []
        ],
        **summary_of(referral, viewer=viewer, policy=policy).model_dump(),
        payload=payload,
        history=[_entry(h, viewer, share) for h in referral.history],
    )


def summary_of(referral: Referral, *, viewer: str, policy: Policy) -> ReferralSummary:
    """The list view of a referral as ``viewer`` may see it."""
    setter = (
        referral.requester_id
        if Status(referral.status) in _SET_BY_REQUESTER
        else referral.performer_id
    )
    code = referral.business_status
    if setter != viewer and code not in _share(referral, viewer, policy).business_statuses:
        code = None
    return ReferralSummary(
        id=UUID(referral.id),
        type=referral.type,
        requester=referral.requester_id,
        performer=referral.performer_id,
        person_id=referral.person_id,
        status=Status(referral.status),
        business_status=code,
        created_at=referral.created_at,
        updated_at=referral.updated_at,
    )


def _share(referral: Referral, viewer: str, policy: Policy) -> StatusShare:
    session = object_session(referral)
    if session is None:  # a referral read outside a session: its partners' kinds are unknown
        return policy.status_share(
            Party(referral.requester_id), Party(referral.performer_id), referral.type, viewer
        )
    return share_between(
        session,
        policy,
        requester=referral.requester_id,
        performer=referral.performer_id,
        type_=referral.type,
        viewer=viewer,
    )


def _entry(h: StatusHistory, viewer: str, share: StatusShare) -> StatusEntry:
    change = {
        "status": h.status,
        "business_status": h.business_status,
        "reason": h.reason,
        "outcome": h.outcome,
    }
    shown = change if h.set_by == viewer else shared_status(change, share)
    return StatusEntry(
        status=Status(h.status),
        business_status=shown.get("business_status"),
        reason=shown.get("reason"),
        outcome=shown.get("outcome"),
        set_by=h.set_by,
        occurred_at=h.occurred_at,
        recorded_at=h.recorded_at,
        event_id=UUID(h.event_id),
    )
