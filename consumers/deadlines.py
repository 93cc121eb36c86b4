"""Deadline consumer: keeps each referral's clock index current from the event stream."""

from __future__ import annotations

from consumers.runner import Context, Event
from hub.db import utcnow
from hub.deadlines import service
from hub.referrals.models import Referral
from schemas.cloudevents import EventType

TRIGGERS = {EventType.REFERRAL_REQUESTED, EventType.REFERRAL_STATUS_CHANGED}
#: What ``prepare`` read for the poll (the session lives for one poll).
_PREPARED = "deadlines.prepared"


def prepare(events: list[Event], ctx: Context) -> None:
    """A poll's referrals, histories, keys and clock rows in four queries, not four per event.

    Each event then finds its referral read already, and nothing it does queries, so the rows
    it adds are flushed once, at the commit, instead of before the next event's reads."""
    ids = {e.attrs.subject for e in events if e.attrs.type in TRIGGERS and e.attrs.subject}
    if ids:
        ctx.session.info[_PREPARED] = service.prepare(ctx.session, ids)


def handle(event: Event, ctx: Context) -> None:
    """Re-evaluate the referral's clocks from its whole history (order-independent)."""
    if event.attrs.type not in TRIGGERS or not event.attrs.subject:
        return
    prepared: service.Prepared | None = ctx.session.info.get(_PREPARED)
    referral: Referral | None
    if prepared is not None and event.attrs.subject in prepared.referrals:
        referral = prepared.referrals[event.attrs.subject]
    else:
        referral = ctx.session.get(Referral, event.attrs.subject)
    if referral is not None:
        service.refresh(
            ctx.session,
            referral,
            catalogue=ctx.catalogue,
            settings=ctx.settings,
            now=utcnow(),
            existing=prepared.clocks.get(referral.id) if prepared else None,
        )
