"""Finding or creating the person a referral is about."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import Conflict, InvalidInput
from hub.people.models import Person, PersonReference
from hub.privacy.service import seal_value
from schemas.messages import PersonIn


def new_pseudonym() -> str:
    """A random person pseudonym: 128 bits, so it can neither be guessed nor derived."""
    return "p_" + secrets.token_urlsafe(16)


def resolve_person(session: Session, *, partner_id: str, person: PersonIn) -> Person:
    """The hub person for the requester's description; created and linked when new."""
    found = _by_reference(session, partner_id, person.partner_reference)
    if person.id:
        known = session.get(Person, person.id)
        if known is None:
            raise InvalidInput("person.id names no known person", field="person.id")
        if found is not None and found.id != known.id:
            raise Conflict(
                "person.partner_reference is already linked to another person",
                field="person.partner_reference",
            )
        if found is None and person.partner_reference:
            _link(session, known, partner_id, person.partner_reference)
        return known
    if found is not None:
        return found
    pid = new_pseudonym()
    birth = person.birth_date.isoformat() if person.birth_date else None
    created = Person(
        id=pid,
        given_name=seal_value(session, pid, person.given_name),
        family_name=seal_value(session, pid, person.family_name),
        birth_date=seal_value(session, pid, birth),
    )
    session.add(created)
    if person.partner_reference:
        _link(session, created, partner_id, person.partner_reference)
    return created


def _by_reference(session: Session, partner_id: str, reference: str | None) -> Person | None:
    if not reference:
        return None
    stmt = (
        select(Person)
        .join(PersonReference, PersonReference.person_id == Person.id)
        .where(PersonReference.partner_id == partner_id, PersonReference.reference == reference)
    )
    return session.scalars(stmt).first()


def _link(session: Session, person: Person, partner_id: str, reference: str) -> None:
    session.add(PersonReference(person_id=person.id, partner_id=partner_id, reference=reference))
