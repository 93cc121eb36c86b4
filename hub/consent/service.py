"""Recording, reading and withdrawing consent; asking whether a flow is covered."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.consent.models import Consent
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.partners.models import Partner
from hub.people.models import Person
from hub.people.service import resolve_person
from hub.policy.model import purposes
from schemas.messages import ConsentCreate


def grant(
    session: Session,
    *,
    person_id: str,
    purpose: str,
    partners: list[str],
    granted_on: date,
    evidence_reference: str,
    notice_language: str,
    by: str,
    shared_with_purposes: list[str] | None = None,
    person_resolved: bool = False,
) -> Consent:
    """Record a consent the person gave (the evidence stays where it was signed).

    ``person_resolved``: the caller just found or created the person (a new one is staged,
    not yet written, and so not to be looked up); otherwise the id is checked."""
    if not person_resolved and session.get(Person, person_id) is None:
        raise InvalidInput(f"no person {person_id}", field="person_id")
    if purpose not in purposes():
        raise InvalidInput(f"unknown purpose {purpose!r}", field="purpose", allowed=purposes())
    unknown = sorted(p for p in set(partners) if session.get(Partner, p) is None)
    if unknown or not partners:
        raise InvalidInput(f"unknown or no partners {unknown}", field="partners")
    if granted_on > date.today():
        raise InvalidInput("granted_on lies in the future", field="granted_on")
    shared = sorted(set(shared_with_purposes or []))
    if set(shared) - set(purposes()):
        raise InvalidInput("unknown purpose in shared_with_purposes", field="shared_with_purposes")
    consent = Consent(
        id=str(uuid.uuid4()),
        person_id=person_id,
        purpose=purpose,
        partners=sorted(set(partners)),
        granted_on=granted_on,
        evidence_reference=evidence_reference,
        notice_language=notice_language,
        shared_with_purposes=shared,
        recorded_by=by,
        recorded_at=utcnow(),
    )
    session.add(consent)
    audit(
        session,
        actor_type=_actor_type(by),
        actor=by,
        action="consent.granted",
        person_id=person_id,
        purpose=purpose,
        details={
            "consent_id": consent.id,
            "partners": consent.partners,
            "shared_with_purposes": shared,
        },
    )
    return consent


def record(session: Session, *, body: ConsentCreate, by: Partner) -> Consent:
    """Record a consent reported by a partner (which must be one of those it covers)."""
    if by.id not in body.partners:
        raise InvalidInput(
            "the recording partner must be among the partners covered", field="partners"
        )
    person = resolve_person(session, partner_id=by.id, person=body.person)
    return grant(
        session,
        person_id=person.id,
        purpose=body.purpose,
        partners=body.partners,
        granted_on=body.granted_on,
        evidence_reference=body.evidence_reference,
        notice_language=body.notice_language,
        by=by.id,
        shared_with_purposes=list(body.shared_with_purposes),
        person_resolved=True,
    )


def visible_to(session: Session, *, person_id: str, viewer: str) -> list[Consent]:
    """The person's consents that ``viewer`` recorded or is covered by."""
    return [
        c
        for c in for_person(session, person_id=person_id)
        if viewer == c.recorded_by or viewer in c.partners
    ]


def withdraw(session: Session, *, consent_id: str, by: str, partner: bool = True) -> Consent:
    """Withdraw a consent; flows that depend on it stop from now on.

    A partner may withdraw only consents it recorded or is covered by (others are 404 to
    it); staff and operators (``partner=False``) may withdraw any.
    """
    consent = session.get(Consent, consent_id)
    hidden = (
        partner and consent is not None and by != consent.recorded_by and by not in consent.partners
    )
    if consent is None or hidden:
        raise NotFound(f"no consent {consent_id}")
    if consent.withdrawn_at is not None:
        raise Conflict(f"consent {consent_id} was already withdrawn")
    consent.withdrawn_at, consent.withdrawn_by = utcnow(), by
    audit(
        session,
        actor_type="partner" if partner else _actor_type(by),
        actor=by,
        action="consent.withdrawn",
        person_id=consent.person_id,
        purpose=consent.purpose,
        details={"consent_id": consent.id},
    )
    return consent


def for_person(session: Session, *, person_id: str) -> list[Consent]:
    """Every consent of a person, newest first, withdrawn ones included."""
    stmt = (
        select(Consent).where(Consent.person_id == person_id).order_by(Consent.recorded_at.desc())
    )
    return list(session.scalars(stmt))


def covering(
    session: Session, *, person_id: str, purpose: str, partners: set[str]
) -> Consent | None:
    """An active consent of the person for this purpose that covers all these partners."""
    for consent in for_person(session, person_id=person_id):
        if (
            consent.withdrawn_at is None
            and consent.purpose == purpose
            and partners <= set(consent.partners)
        ):
            return consent
    return None


def last_withdrawn(
    session: Session, *, person_id: str, purpose: str, partners: set[str]
) -> Consent | None:
    """The person's most recently withdrawn consent for this purpose covering these partners."""
    withdrawn = [
        c
        for c in for_person(session, person_id=person_id)
        if c.withdrawn_at is not None and c.purpose == purpose and partners <= set(c.partners)
    ]
    return max(withdrawn, key=lambda c: c.withdrawn_at or c.recorded_at, default=None)


def _actor_type(by: str) -> str:
    return "staff" if by.startswith("staff:") else "system" if by.startswith("cli:") else "partner"


def shared_by_consent(session: Session, *, person_id: str, viewer: frozenset[str]) -> set[str]:
    """Purposes outside ``viewer`` whose entries the person's active consents share with it."""
    return {
        c.purpose
        for c in for_person(session, person_id=person_id)
        if c.withdrawn_at is None and viewer & set(c.shared_with_purposes or [])
    }
