"""Erasing a person (crypto-shredding): the data key goes, and every feature's rows lose
what would otherwise stay readable; open referrals are closed and the partners told."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.consent.models import Consent
from hub.crypto.fields import cipher
from hub.db import after_commit, checkpoint_wal, utcnow
from hub.deadlines.service import stop_clocks
from hub.errors import InvalidInput, NotFound
from hub.events.service import attributes_for
from hub.inbox.models import InboxMessage
from hub.outbox.service import add_event
from hub.people.index import forget as forget_index
from hub.people.models import Person, PersonReference
from hub.referrals.idempotency import forget_answers
from hub.referrals.models import Referral, StaffNote, StatusHistory
from hub.routing.models import RoutingHold
from schemas.catalogue import load_catalogue
from schemas.cloudevents import EventType
from schemas.lifecycle import ACTIVE, PERSON_ERASED, Status
from schemas.messages import PersonErased, ReferralStatusChanged

log = logging.getLogger(__name__)

ERASURE_REASONS = ("request-art-17", "retention-expired", "unlawful-processing", "court-order")


def erase_person(session: Session, *, person_id: str, reason: str, by: str, topic: str) -> None:
    """Delete the person's data key and remove what the hub keeps about them elsewhere.

    Every encrypted copy (Kafka topics, dead letters, the outbox, backups) becomes unreadable
    with the key. Here the rows lose what is not encrypted, or what would otherwise stay
    readable until the key goes (see ``_forget_rows``); the person's open referrals are
    cancelled (``PERSON_ERASED``) with their clocks stopped, and each party hears of it
    by the routed status change; ``person.erased`` closes the timeline and tells every
    partner that took part in one of the person's referrals, open or closed (``notify``).
    On SQLite the WAL is checkpointed once this commits, so the replaced pages leave
    ``hub.db-wal`` too.
    """
    if reason not in ERASURE_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(ERASURE_REASONS)}", field="reason")
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    now = utcnow()
    notify = _parties(session, person_id)
    _close_open_referrals(session, person_id=person_id, topic=topic, now=now)
    cipher(session).keys.erase(person_id)
    person.given_name = person.family_name = person.birth_date = None
    _forget_rows(session, person_id)
    audit(
        session,
        actor_type="staff" if by.startswith("staff:") else "system",
        actor=by,
        action="person.erased",
        person_id=person_id,
        details={"reason": reason},
    )
    erased = PersonErased(
        event_id=uuid.uuid4(),
        person_id=person_id,
        acting_partner="hub",
        occurred_at=now,
        recorded_at=now,
        correlation_id=uuid.uuid4(),
        reason=reason,
        notify=notify,
    )
    add_event(
        session, topic=topic, attrs=attributes_for(EventType.PERSON_ERASED, erased), data=erased
    )
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    after_commit(session, lambda: _checkpoint(engine))


def _parties(session: Session, person_id: str) -> dict[str, list[uuid.UUID]]:
    """Each partner that took part in one of the person's referrals, with those referrals:
    the recipients the hub disclosed the person's data to (Art. 19 GDPR)."""
    parties: dict[str, list[uuid.UUID]] = {}
    stmt = (
        select(Referral.id, Referral.requester_id, Referral.performer_id)
        .where(Referral.person_id == person_id)
        .order_by(Referral.created_at, Referral.id)
    )
    for referral_id, requester, performer in session.execute(stmt):
        for partner in dict.fromkeys((requester, performer)):
            parties.setdefault(partner, []).append(uuid.UUID(referral_id))
    return parties


def forget_portal(session: Session, person_id: str) -> None:
    """End the person's Mein Verfahren sessions, revoke their codes, unlink citizen logins."""
    from hub.portal.models import CitizenLink, ClientInvite, ClientSession

    session.execute(delete(ClientSession).where(ClientSession.person_id == person_id))
    session.execute(delete(CitizenLink).where(CitizenLink.person_id == person_id))
    session.execute(delete(ClientInvite).where(ClientInvite.person_id == person_id))


def _forget_rows(session: Session, person_id: str) -> None:
    """Remove the person's data from every table that holds it outside the audit log.

    Consents are deleted, not kept with their evidence shredded: the verifiable audit log
    already holds what Art. 7(1) and 5(2) GDPR require the hub to prove (which consent, for
    which purpose and partners, recorded by whom and when, withdrawn when), and the evidence
    itself stays with the partner that recorded it; the row would only add the free-text
    evidence reference and notice language, which are personal and not needed any more.
    The search index digests of their name and birth date go. Staff notes (sealed) and
    routing holds (an event that can no longer be routed, its data sealed) are deleted;
    stored Idempotency-Key answers that name the person or one of their referrals go with
    their keys, which a partner may have built from its own identifiers.
    """
    referral_ids = list(session.scalars(select(Referral.id).where(Referral.person_id == person_id)))
    session.execute(delete(PersonReference).where(PersonReference.person_id == person_id))
    forget_index(session, person_id)
    session.execute(update(Referral).where(Referral.person_id == person_id).values(payload={}))
    session.execute(
        update(StatusHistory).where(StatusHistory.referral_id.in_(referral_ids)).values(note=None)
    )
    session.execute(delete(StaffNote).where(StaffNote.person_id == person_id))
    session.execute(delete(Consent).where(Consent.person_id == person_id))
    session.execute(delete(RoutingHold).where(RoutingHold.person_id == person_id))
    forget_portal(session, person_id)
    forget_answers(session, naming=[person_id, *referral_ids])
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.referral_id.in_(referral_ids))
        .values(data={"person_id": person_id, "erased": True})
    )


def _close_open_referrals(session: Session, *, person_id: str, topic: str, now: datetime) -> None:
    """Cancel the person's open referrals: nobody can work on them without the person's data."""
    active = [s.value for s in ACTIVE]
    referrals = session.scalars(
        select(Referral).where(Referral.person_id == person_id, Referral.status.in_(active))
    ).all()
    for referral in referrals:
        cancel_as_hub(session, referral, reason=PERSON_ERASED, now=now, topic=topic)
    stop_clocks(session, referral_ids=[r.id for r in referrals], at=now)


def cancel_as_hub(
    session: Session, referral: Referral, *, reason: str, now: datetime, topic: str
) -> None:
    """The hub's own ``cancelled`` of a referral nobody will work on (erasure, idleness).

    ``cancelled`` is the lifecycle's end for work that will not be done; ``reason`` says
    why. The history entry names the requester, whose move a cancellation is; the event is
    the hub's, so the router sends it to both parties. The caller stops the clocks.
    """
    rtype = load_catalogue().get(referral.type)
    event = ReferralStatusChanged(
        event_id=uuid.uuid4(),
        referral_id=uuid.UUID(referral.id),
        person_id=referral.person_id,
        acting_partner="hub",
        occurred_at=now,
        recorded_at=now,
        purpose=rtype.purpose if rtype else None,
        legal_basis=rtype.legal_basis if rtype else None,
        correlation_id=uuid.UUID(referral.correlation_id),
        referral_type=referral.type,
        requester=referral.requester_id,
        performer=referral.performer_id,
        from_status=Status(referral.status),
        status=Status.CANCELLED,
        reason=reason,
    )
    referral.status, referral.business_status = Status.CANCELLED.value, None
    referral.updated_at = now
    referral.history.append(
        StatusHistory(
            referral_id=referral.id,
            status=Status.CANCELLED.value,
            reason=reason,
            set_by=referral.requester_id,
            occurred_at=now,
            recorded_at=now,
            event_id=str(event.event_id),
        )
    )
    attrs = attributes_for(EventType.REFERRAL_STATUS_CHANGED, event)
    add_event(session, topic=topic, attrs=attrs, data=event)


def _checkpoint(engine: Engine) -> None:
    try:
        complete = checkpoint_wal(engine)
    except SQLAlchemyError as exc:
        log.warning("privacy.wal_checkpoint_failed", extra={"error": repr(exc)})
        return
    if not complete:
        # The next erasure's checkpoint, or SQLite's own at 1000 pages, finishes the job.
        log.warning("privacy.wal_checkpoint_incomplete")
