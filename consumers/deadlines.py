"""Deadline consumer: keeps each referral's clock index current from the event stream."""

from __future__ import annotations

from consumers.runner import Context, Event
from hub.db import utcnow
from hub.deadlines.service import refresh
from hub.referrals.models import Referral
from schemas.cloudevents import EventType

TRIGGERS = {EventType.REFERRAL_REQUESTED, EventType.REFERRAL_STATUS_CHANGED}


def handle(event: Event, ctx: Context) -> None:
    """Re-evaluate the referral's clocks from its whole history (order-independent)."""
    if event.attrs.type not in TRIGGERS or not event.attrs.subject:
        return
    referral = ctx.session.get(Referral, event.attrs.subject)
    if referral is not None:
        refresh(ctx.session, referral, catalogue=ctx.catalogue, settings=ctx.settings, now=utcnow())
