"""Retention: what outlived the retention period of its route is shredded.

A referral is due when it ended (a terminal status) more than ``retention_days`` ago under
its route. Its personal data is removed (payload, status notes, staff notes, held events,
stored Idempotency-Key answers that name it); a person none of whose referrals is still
kept is erased altogether (crypto-shredding, so copies in Kafka and backups go with it).

The job runs every night (deploy/k8s/base/nightly-jobs.yaml), so it does nothing twice: a
shredded referral carries ``shredded_at`` and is never due again, and a person who is
already erased is not erased again (which would put another erasure on their timeline and
in the audit log each night).

An open referral nobody reported on is never due by itself, so the job first closes every
open referral without a status change for its route's ``idle_days``: ``cancelled`` with the
reason ``retention-idle``, made by the hub like the cancellation of an erasure, so both
parties are told by the routed status change and the clocks stop. Its retention period runs
from then.

A retention day is a day, or ``HUB_CLOCK_TIME_UNIT_SECONDS`` seconds when that compresses
the deadline clocks (tests and demos), so the whole schedule can run in seconds. The
production profile ignores the setting here: a stray variable must not shred in minutes
what the policy keeps for years.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.crypto.fields import cipher
from hub.deadlines.service import stop_clocks
from hub.inbox.models import InboxMessage
from hub.policy.model import DEFAULT_IDLE_DAYS, Policy, Route
from hub.policy.parties import route_between
from hub.privacy.service import cancel_as_hub, erase_person
from hub.referrals.idempotency import forget_answers
from hub.referrals.models import Referral, StaffNote, StatusHistory
from hub.routing.models import RoutingHold
from hub.settings import Settings
from schemas.lifecycle import ACTIVE, RETENTION_IDLE, TERMINAL

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
#: The reason of the ``cancelled`` status the hub gives an open referral left idle too long.


@dataclass(frozen=True)
class Due:
    referral_id: str
    person_id: str
    route: str
    ended: datetime
    erase_person: bool


@dataclass(frozen=True)
class Idle:
    referral_id: str
    person_id: str
    route: str
    status: str
    last_change: datetime
    idle_days: int

    def as_json(self) -> dict[str, str | int]:
        """How ``hub retention`` reports it."""
        return {
            "referral_id": self.referral_id,
            "person_id": self.person_id,
            "route": self.route,
            "status": self.status,
            "last_change": self.last_change.isoformat(),
            "idle_days": self.idle_days,
        }


@dataclass(frozen=True)
class Report:
    """What one retention run closed (idle) and shredded (due)."""

    closed: list[Idle] = field(default_factory=list)
    shredded: list[Due] = field(default_factory=list)


def day_length(settings: Settings) -> timedelta:
    """How long a retention day lasts under these settings (see the module docstring)."""
    unit = settings.clock_time_unit_seconds
    if unit is None:
        return DAY
    if settings.profile == "production":
        log.warning("retention.compressed_clock_ignored", extra={"unit_seconds": unit})
        return DAY
    return timedelta(seconds=unit)


def plan(session: Session, *, policy: Policy, now: datetime, day: timedelta = DAY) -> Report:
    """What a run would do now, without changing anything.

    Referrals closed for idleness are listed under ``closed`` only: their retention period
    starts with the closing, so the same run never shreds them.
    """
    return Report(
        closed=idle(session, policy=policy, now=now, day=day),
        shredded=due(session, policy=policy, now=now, day=day),
    )


def run(
    session: Session, *, policy: Policy, now: datetime, topic: str, day: timedelta = DAY
) -> Report:
    """One retention run: close idle open referrals, then shred everything due."""
    closed = close_idle(session, policy=policy, now=now, topic=topic, day=day)
    return Report(closed, shred(session, policy=policy, now=now, topic=topic, day=day))


def idle(session: Session, *, policy: Policy, now: datetime, day: timedelta = DAY) -> list[Idle]:
    """Open referrals without a status change for longer than their route's ``idle_days``."""
    shortest = min([DEFAULT_IDLE_DAYS, *(r.idle_days for r in policy.grants)])
    candidates = session.scalars(
        select(Referral)
        .where(
            Referral.status.in_([s.value for s in ACTIVE]),
            Referral.updated_at <= now - shortest * day,
        )
        .order_by(Referral.updated_at, Referral.id)
    )
    found = []
    for r in candidates:
        route = route_between(
            session, policy, requester=r.requester_id, performer=r.performer_id, type_=r.type
        )
        days = route.idle_days if route else DEFAULT_IDLE_DAYS
        if r.updated_at + days * day <= now:
            found.append(Idle(r.id, r.person_id, _name(route), r.status, r.updated_at, days))
    return found


def close_idle(
    session: Session, *, policy: Policy, now: datetime, topic: str, day: timedelta = DAY
) -> list[Idle]:
    """Cancel the open referrals left idle too long (``RETENTION_IDLE``); returns them."""
    found = idle(session, policy=policy, now=now, day=day)
    for item in found:
        referral = session.get_one(Referral, item.referral_id)
        cancel_as_hub(session, referral, reason=RETENTION_IDLE, now=now, topic=topic)
        audit(
            session,
            actor_type="system",
            actor="retention",
            action="referral.closed_idle",
            person_id=item.person_id,
            details={
                "referral_id": item.referral_id,
                "route": item.route,
                "from_status": item.status,
                "last_change": item.last_change.isoformat(),
                "idle_days": item.idle_days,
            },
        )
    stop_clocks(session, referral_ids=[i.referral_id for i in found], at=now)
    return found


def _name(route: Route | None) -> str:
    return route.name if route else "(no route)"


def due(session: Session, *, policy: Policy, now: datetime, day: timedelta = DAY) -> list[Due]:
    """What the retention job would shred now, without changing anything."""
    ended = session.scalars(
        select(Referral).where(
            Referral.status.in_([s.value for s in TERMINAL]), Referral.shredded_at.is_(None)
        )
    )
    expired = []
    for r in ended:
        route = route_between(
            session, policy, requester=r.requester_id, performer=r.performer_id, type_=r.type
        )
        days = route.retention_days if route else 0
        if r.updated_at + days * day <= now:
            expired.append((r, _name(route)))
    expired_ids = {r.id for r, _ in expired}
    concerned = {r.person_id for r, _ in expired}
    # A referral shredded before keeps nobody; one that is still open or not yet due does.
    kept = set(
        session.scalars(
            select(Referral.person_id).where(
                Referral.person_id.in_(concerned),
                Referral.shredded_at.is_(None),
                Referral.id.not_in(expired_ids),
            )
        )
    )
    keys = cipher(session).keys
    erasable = {p for p in concerned - kept if not keys.is_erased(p)}
    return [
        Due(r.id, r.person_id, name, r.updated_at, r.person_id in erasable) for r, name in expired
    ]


def shred(
    session: Session, *, policy: Policy, now: datetime, topic: str, day: timedelta = DAY
) -> list[Due]:
    """Shred everything due; returns what was done."""
    done = due(session, policy=policy, now=now, day=day)
    erased: set[str] = set()
    for item in done:
        _shred_referral(session, item, now=now)
        if item.erase_person and item.person_id not in erased:
            erase_person(
                session,
                person_id=item.person_id,
                reason="retention-expired",
                by="system:retention",
                topic=topic,
            )
            erased.add(item.person_id)
    return done


def _shred_referral(session: Session, item: Due, *, now: datetime) -> None:
    # Staff notes, held events and stored answers are sealed or name the referral: they
    # would stay readable for as long as the person's key lives (other referrals kept).
    session.execute(
        update(Referral).where(Referral.id == item.referral_id).values(payload={}, shredded_at=now)
    )
    session.execute(
        update(StatusHistory).where(StatusHistory.referral_id == item.referral_id).values(note=None)
    )
    session.execute(delete(StaffNote).where(StaffNote.referral_id == item.referral_id))
    session.execute(delete(RoutingHold).where(RoutingHold.referral_id == item.referral_id))
    forget_answers(session, naming=[item.referral_id])
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.referral_id == item.referral_id)
        .values(data={"person_id": item.person_id, "erased": True})
    )
    audit(
        session,
        actor_type="system",
        actor="retention",
        action="referral.shredded",
        person_id=item.person_id,
        details={"referral_id": item.referral_id, "route": item.route},
    )
