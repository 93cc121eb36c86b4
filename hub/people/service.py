"""Finding or creating the person a referral is about."""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, make_transient_to_detached

from hub import staged
from hub.crypto.fields import seal_value
from hub.crypto.keystore import expect_new
from hub.crypto.models import PersonKey
from hub.db import insert_if_absent, table_of, utcnow
from hub.errors import Conflict, InvalidInput
from hub.people.index import index_person
from hub.people.models import Person, PersonReference
from hub.people.names import reference_key
from schemas.messages import PersonIn

# Built once: a request binds its values instead of constructing a statement.
_PEOPLE = table_of(Person)
_BY_REFERENCE = (
    select(Person)
    .join(PersonReference, PersonReference.person_id == Person.id)
    .where(
        PersonReference.partner_id == bindparam("partner_id"),
        PersonReference.reference == bindparam("reference"),
    )
    .execution_options(autoflush=False)
)


def new_pseudonym() -> str:
    """A random person pseudonym: 128 bits, so it can neither be guessed nor derived."""
    return "p_" + secrets.token_urlsafe(16)


def resolve_person(session: Session, *, partner_id: str, person: PersonIn) -> Person:
    """The hub person for the requester's description; created and linked when new.

    A new person's reference is claimed first, with the pseudonym the person will get: the
    insert does nothing if the partner already uses the reference, and then the person it
    names is read. Two requests racing to introduce one reference so agree on one person
    (the second waits for the first's outcome), and a new person costs no look-up. The
    reference's foreign key to the person is checked at commit, after the person is written.
    """
    if person.id:
        return _named(session, partner_id, person)
    pid = new_pseudonym()
    if not person.partner_reference or _link(session, pid, partner_id, person.partner_reference):
        return _create(session, person, pid)
    linked = _by_reference(session, partner_id, person.partner_reference)
    if linked is None:  # pragma: no cover - the insert just found the reference
        raise Conflict("person.partner_reference changed meanwhile; retry")
    return linked


def _named(session: Session, partner_id: str, person: PersonIn) -> Person:
    """The person a requester names by pseudonym, linked to its reference if not yet."""
    known = session.get(Person, person.id)
    if known is None:
        raise InvalidInput("person.id names no known person", field="person.id")
    key = session.get(PersonKey, known.id)
    if key is not None and key.erased_at is not None:
        # Nothing new may be tied to the pseudonym: it would bring data back (Art. 17).
        raise Conflict(
            f"person.id names a person whose data was erased on {key.erased_at.date()}",
            field="person.id",
        )
    found = _by_reference(session, partner_id, person.partner_reference)
    if found is not None and found.id != known.id:
        raise Conflict(
            "person.partner_reference is already linked to another person",
            field="person.partner_reference",
        )
    if (
        found is None
        and person.partner_reference
        and not _link(session, known.id, partner_id, person.partner_reference)
    ):
        raise Conflict(
            "person.partner_reference was just linked by another request",
            field="person.partner_reference",
        )
    return known


def _create(session: Session, person: PersonIn, pid: str) -> Person:
    expect_new(session, pid)
    birth = person.birth_date.isoformat() if person.birth_date else None
    values = {
        "id": pid,
        "given_name": seal_value(session, pid, person.given_name),
        "family_name": seal_value(session, pid, person.family_name),
        "birth_date": seal_value(session, pid, birth),
        "created_at": utcnow(),
    }
    # Staged with its key and search entries: written with the transaction's next staged rows
    # (its referral and outbox rows; one statement on PostgreSQL), before any ORM row that
    # references the person is flushed.
    staged.stage(session, _PEOPLE, [values])
    index_person(
        session,
        person_id=pid,
        given_name=person.given_name,
        family_name=person.family_name,
        birth_date=birth,
        new=True,
    )
    # Known to the session as the row just written, without reading it back.
    created = Person(**values)
    make_transient_to_detached(created)
    session.add(created)
    return created


def _by_reference(session: Session, partner_id: str, reference: str | None) -> Person | None:
    if not reference:
        return None
    params = {"partner_id": partner_id, "reference": reference}
    return session.scalars(_BY_REFERENCE, params).first()


def _link(session: Session, person_id: str, partner_id: str, reference: str) -> bool:
    """Link the partner's reference to the person; False if the reference is taken."""
    row = {
        "person_id": person_id,
        "partner_id": partner_id,
        "reference": reference,
        "reference_key": reference_key(reference),
        "created_at": utcnow(),
    }
    return insert_if_absent(session, PersonReference, row)
