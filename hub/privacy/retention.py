"""Retention: what outlived the retention period of its route is shredded.

A referral is due when it ended (a terminal status) more than ``retention_days`` ago under
its route. Its personal data is removed (payload, status notes, staff notes, held events,
stored Idempotency-Key answers that name it); a person none of whose referrals is still
kept is erased altogether (crypto-shredding, so copies in Kafka and backups go with it).

The job runs every night (deploy/k8s/base/nightly-jobs.yaml), so it does nothing twice: a
shredded referral carries ``shredded_at`` and is never due again, and a person who is
already erased is not erased again (which would put another erasure on their timeline and
in the audit log each night).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.inbox.models import InboxMessage
from hub.policy.model import Policy
from hub.privacy.service import cipher, erase_person
from hub.referrals.idempotency import forget_answers
from hub.referrals.models import Referral, StaffNote, StatusHistory
from hub.routing.models import RoutingHold
from schemas.lifecycle import TERMINAL


@dataclass(frozen=True)
class Due:
    referral_id: str
    person_id: str
    route: str
    ended: datetime
    erase_person: bool


def due(session: Session, *, policy: Policy, now: datetime) -> list[Due]:
    """What the retention job would shred now, without changing anything."""
    ended = session.scalars(
        select(Referral).where(
            Referral.status.in_([s.value for s in TERMINAL]), Referral.shredded_at.is_(None)
        )
    )
    expired = []
    for r in ended:
        route = policy.route(r.requester_id, r.performer_id, r.type)
        days = route.retention_days if route else 0
        if r.updated_at + timedelta(days=days) <= now:
            expired.append((r, route.name if route else "(no route)"))
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


def shred(session: Session, *, policy: Policy, now: datetime, topic: str) -> list[Due]:
    """Shred everything due; returns what was done."""
    done = due(session, policy=policy, now=now)
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
