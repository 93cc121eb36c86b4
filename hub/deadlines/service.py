"""Deadline clocks of referrals: computed from the status history, kept in an index for the
scheduler, and announced once per clock instance as ``deadline-due`` events.

A clock is always evaluated from the whole status history (ordered by occurred-at), so
events that arrive late or out of order, pauses and corrections give the same answer as if
they had arrived in order. The ``clock_instances`` table is only an index of what may fall
due; the ``deadline_notices`` table makes each warning and expiry happen once per clock
instance (a clock that starts again is a new instance).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from hub.crypto.fields import load_keys, open_event
from hub.deadlines.calendar import NRWCalendar
from hub.deadlines.domain import ClockState, StatusPoint, evaluate_all
from hub.deadlines.models import ClockInstance, DeadlineNotice
from hub.events.service import attributes_for
from hub.outbox.service import add_event
from hub.referrals.models import Referral
from hub.settings import Settings
from schemas.catalogue import Catalogue
from schemas.cloudevents import EventType
from schemas.lifecycle import PERSON_ERASED
from schemas.messages import DeadlineDue

_NAMESPACE = uuid.UUID("0b7d54a2-6f7e-4d43-9c43-5a2b8f0e6c11")
OPEN_STATES = ("running", "expired")


@cache
def nrw_calendar() -> NRWCalendar:
    """One holiday calendar per process (it caches the holidays of each year it is asked)."""
    return NRWCalendar()


def clocks_of(
    session: Session, referral: Referral, *, catalogue: Catalogue, settings: Settings, now: datetime
) -> list[ClockState]:
    """Every clock of the referral's type, as it stands at ``now``."""
    rtype = catalogue.get(referral.type)
    if rtype is None or not rtype.clocks:
        return []
    payload = open_event(session, referral.person_id, {"payload": referral.payload})["payload"]
    history = [
        StatusPoint(h.status, h.business_status, h.reason, h.occurred_at, h.recorded_at, h.event_id)
        for h in referral.history
    ]
    states = evaluate_all(
        rtype.clocks,
        history,
        accelerated=payload.get("accelerated") is True,
        calendar=nrw_calendar(),
        now=now,
        time_unit_seconds=settings.clock_time_unit_seconds,
    )
    closing = referral.history[-1] if referral.history else None
    if closing is not None and closing.reason == PERSON_ERASED:
        # Whatever a clock's own stop statuses are, nobody works on an erased person's case.
        return [_stopped(s, closing.occurred_at) for s in states]
    return states


def _stopped(state: ClockState, at: datetime) -> ClockState:
    if state.state in ("stopped", "not-started"):
        return state
    return replace(
        state,
        state="stopped",
        stopped_at=at,
        stop_reason=PERSON_ERASED,
        time_left=None,
        suggestion=None,
    )


def stop_clocks(session: Session, *, referral_ids: Collection[str], at: datetime) -> None:
    """Stop the clocks of referrals closed because their person was erased, at once."""
    # The deadline consumer would stop them too, once it sees the closing status change;
    # until then the scheduler could still announce a warning or an expiry.
    if not referral_ids:
        return
    session.execute(
        update(ClockInstance)
        .where(
            ClockInstance.referral_id.in_(list(referral_ids)),
            ClockInstance.state.in_(("running", "paused", "expired")),
        )
        .values(state="stopped", warn_at=None, suggestion=None, updated_at=at)
    )


def refresh(
    session: Session,
    referral: Referral,
    *,
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
    existing: dict[str, ClockInstance] | None = None,
) -> None:
    """Bring the index rows of the referral's clocks up to date.

    ``existing``: the referral's clock rows by name, read already (see ``prepare``); the rows
    this call adds are put there too."""
    if existing is None:
        existing = {
            c.name: c
            for c in session.scalars(
                select(ClockInstance).where(ClockInstance.referral_id == referral.id)
            )
        }
    for state in clocks_of(session, referral, catalogue=catalogue, settings=settings, now=now):
        row = existing.get(state.name) or ClockInstance(
            referral_id=referral.id,
            name=state.name,
            referral_type=referral.type,
            performer_id=referral.performer_id,
            requester_id=referral.requester_id,
            person_id=referral.person_id,
        )
        row.state, row.started_at, row.due_at = state.state, state.started_at, state.due_at
        row.warn_at, row.suggestion, row.updated_at = state.warn_at, state.suggestion, now
        session.add(row)
        existing[state.name] = row


@dataclass
class Prepared:
    """What ``refresh`` needs for many referrals, read at once (see ``prepare``)."""

    referrals: dict[str, Referral]  # with their histories; held here, the session's are weak
    clocks: dict[str, dict[str, ClockInstance]]  # by referral id and clock name


def prepare(session: Session, referral_ids: Collection[str]) -> Prepared:
    """The referrals with their histories, their clock rows, and their people's keys (in the
    session's key cache): four queries for any number of referrals."""
    referrals = {
        r.id: r
        for r in session.scalars(
            select(Referral)
            .where(Referral.id.in_(referral_ids))
            .options(selectinload(Referral.history))
        )
    }
    load_keys(session, {r.person_id for r in referrals.values()})
    clocks: dict[str, dict[str, ClockInstance]] = {rid: {} for rid in referrals}
    for clock in session.scalars(
        select(ClockInstance).where(ClockInstance.referral_id.in_(referral_ids))
    ):
        clocks.setdefault(clock.referral_id, {})[clock.name] = clock
    return Prepared(referrals, clocks)


def announce_due(
    session: Session, *, catalogue: Catalogue, settings: Settings, now: datetime
) -> int:
    """Emit the warnings and expiries that fell due; return how many events were staged."""
    candidates = session.scalars(
        select(ClockInstance.referral_id)
        .where(
            ClockInstance.state.in_(("running", "paused", "expired")),
            or_(ClockInstance.warn_at <= now, ClockInstance.due_at <= now),
        )
        .distinct()
    ).all()
    staged = 0
    for referral_id in candidates:
        referral = session.get(Referral, referral_id)
        if referral is None:
            continue
        refresh(session, referral, catalogue=catalogue, settings=settings, now=now)
        for state in clocks_of(session, referral, catalogue=catalogue, settings=settings, now=now):
            staged += _announce(session, referral, state, catalogue, settings, now)
    return staged


def _announce(
    session: Session,
    referral: Referral,
    state: ClockState,
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> int:
    if state.started_at is None or state.due_at is None:
        return 0
    kinds = []
    if state.state == "running" and state.warn_at is not None and state.warn_at <= now:
        kinds.append("warning")
    if state.state == "expired":
        kinds.append("expired")
    return sum(
        _emit_once(session, referral, state, kind, catalogue, settings, now) for kind in kinds
    )


def _emit_once(
    session: Session,
    referral: Referral,
    state: ClockState,
    kind: str,
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> int:
    assert state.started_at is not None and state.due_at is not None
    already = session.scalars(
        select(DeadlineNotice.id).where(
            DeadlineNotice.referral_id == referral.id,
            DeadlineNotice.name == state.name,
            DeadlineNotice.kind == kind,
            DeadlineNotice.started_at == state.started_at,
        )
    ).first()
    if already is not None:
        return 0
    rtype = catalogue.types[referral.type]
    event_id = uuid.uuid5(
        _NAMESPACE, f"{referral.id}:{state.name}:{kind}:{state.started_at.isoformat()}"
    )
    at = state.warn_at if kind == "warning" and state.warn_at else state.due_at
    due = DeadlineDue(
        event_id=event_id,
        referral_id=uuid.UUID(referral.id),
        person_id=referral.person_id,
        acting_partner="hub",
        occurred_at=min(at, now),
        recorded_at=now,
        purpose=rtype.purpose,
        legal_basis=rtype.legal_basis,
        correlation_id=uuid.UUID(referral.correlation_id),
        referral_type=referral.type,
        requester=referral.requester_id,
        performer=referral.performer_id,
        clock=state.name,
        kind=kind,
        due_at=state.due_at,
        suggestion=state.suggestion if kind == "expired" else None,
    )
    session.add(
        DeadlineNotice(
            referral_id=referral.id,
            name=state.name,
            kind=kind,
            started_at=state.started_at,
            event_id=str(event_id),
        )
    )
    add_event(
        session,
        topic=settings.topic_events,
        attrs=attributes_for(EventType.REFERRAL_DEADLINE_DUE, due),
        data=due,
    )
    return 1


def overdue_referral_ids(partner_id: str, now: datetime) -> Select[str]:
    """A subquery: referrals whose performer is ``partner_id`` with a clock past its due time."""
    return select(ClockInstance.referral_id).where(
        ClockInstance.performer_id == partner_id,
        ClockInstance.state.in_(OPEN_STATES),
        ClockInstance.due_at < now,
    )


def overdue_counts(session: Session, *, now: datetime) -> list[tuple[str, str, int]]:
    """Overdue clocks per performing partner and referral type, for the dashboard."""
    stmt = (
        select(ClockInstance.performer_id, ClockInstance.referral_type, func.count())
        .where(ClockInstance.state.in_(OPEN_STATES), ClockInstance.due_at < now)
        .group_by(ClockInstance.performer_id, ClockInstance.referral_type)
        .order_by(ClockInstance.performer_id, ClockInstance.referral_type)
    )
    return [(p, t, int(n)) for p, t, n in session.execute(stmt)]
