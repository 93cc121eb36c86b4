"""Finding or creating the person a referral is about."""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from hub.crypto.fields import seal_value
from hub.crypto.keystore import expect_new
from hub.crypto.models import PersonKey
from hub.db import insert_if_absent, table_of, utcnow
from hub.errors import Conflict, InvalidInput
from hub.people.index import forget, index_person
from hub.people.models import Person, PersonReference
from schemas.messages import PersonIn

# Built once: a request binds its values instead of constructing a statement.
_INSERT_PERSON = insert(table_of(Person))
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

    A new person and its reference are written at once (not at the next flush): the reference
    is inserted unless it exists, so two requests racing to introduce one reference agree on
    one person instead of one of them failing at commit.
    """
    found = _by_reference(session, partner_id, person.partner_reference)
    if person.id:
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
        if found is not None and found.id != known.id:
            raise Conflict(
                "person.partner_reference is already linked to another person",
                field="person.partner_reference",
            )
        if (
            found is None
            and person.partner_reference
            and not _link(session, known, partner_id, person.partner_reference)
        ):
            raise Conflict(
                "person.partner_reference was just linked by another request",
                field="person.partner_reference",
            )
        return known
    if found is not None:
        return found
    created = _create(session, person)
    if person.partner_reference and not _link(
        session, created, partner_id, person.partner_reference
    ):
        # Linked by a concurrent request since we looked: that one's person is the person.
        _discard(session, created)
        linked = _by_reference(session, partner_id, person.partner_reference)
        if linked is None:  # pragma: no cover - the insert just found the reference
            raise Conflict("person.partner_reference changed meanwhile; retry")
        return linked
    return created


def _create(session: Session, person: PersonIn) -> Person:
    pid = new_pseudonym()
    expect_new(session, pid)
    birth = person.birth_date.isoformat() if person.birth_date else None
    values = {
        "id": pid,
        "given_name": seal_value(session, pid, person.given_name),
        "family_name": seal_value(session, pid, person.family_name),
        "birth_date": seal_value(session, pid, birth),
        "created_at": utcnow(),
    }
    session.execute(_INSERT_PERSON, values)
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


def _discard(session: Session, person: Person) -> None:
    session.expunge(person)
    forget(session, person.id)
    session.execute(delete(table_of(Person)).where(table_of(Person).c.id == person.id))
    # Minted in this transaction and used nowhere: its key goes with it.
    keys = table_of(PersonKey)
    session.execute(delete(keys).where(keys.c.person_id == person.id))


def _by_reference(session: Session, partner_id: str, reference: str | None) -> Person | None:
    if not reference:
        return None
    params = {"partner_id": partner_id, "reference": reference}
    return session.scalars(_BY_REFERENCE, params).first()


def _link(session: Session, person: Person, partner_id: str, reference: str) -> bool:
    """Link the partner's reference to the person; False if the reference is taken."""
    row = {
        "person_id": person.id,
        "partner_id": partner_id,
        "reference": reference,
        "created_at": utcnow(),
    }
    return insert_if_absent(session, PersonReference, row)
