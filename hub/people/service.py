"""Finding or creating the person a referral is about."""

from __future__ import annotations

import hashlib
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import staged
from hub.crypto.fields import seal_values
from hub.crypto.keystore import expect_new
from hub.crypto.models import PersonKey
from hub.db import insert_if_absent, table_of, utcnow
from hub.errors import Conflict, InvalidInput
from hub.people.index import index_person
from hub.people.models import Person, PersonReference
from hub.people.names import reference_key
from schemas.messages import PersonIn

T = TypeVar("T")

# Built once: a request binds its values instead of constructing a statement.
_PEOPLE = table_of(Person)
_REFERENCES = table_of(PersonReference)
# The unique key a reference written late collides with when another request introduced it.
_TAKEN = "uq_person_references_partner_id_reference"
# session.info: the caller runs its work again if a reference written late was taken
# (:func:`references_late`); the (partner, reference) pairs staged so, for the hints.
_LATE = "hub.people.references_late"
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


@dataclass(frozen=True, slots=True)
class StagedPerson:
    """A new person as staged for the transaction's next statement: its pseudonym and its
    sealed fields (tokens), as :class:`Person` has them."""

    id: str
    given_name: str | None
    family_name: str | None
    birth_date: str | None


def resolve_person(session: Session, *, partner_id: str, person: PersonIn) -> Person | StagedPerson:
    """The hub person for the requester's description; created and linked when new.

    A new person's reference is claimed first, with the pseudonym the person will get: the
    insert does nothing if the partner already uses the reference, and then the person it
    names is read. Two requests racing to introduce one reference so agree on one person
    (the second waits for the first's outcome), and a new person costs no look-up. The
    reference's foreign key to the person is checked at commit, after the person is written.
    Inside :func:`references_late` the reference is instead written with the person's rows,
    and a request that finds it taken runs again, claiming first.
    """
    if person.id:
        return _named(session, partner_id, person)
    pid = new_pseudonym()
    reference = person.partner_reference
    late: list[tuple[str, str]] | None = session.info.get(_LATE)
    if (
        reference
        and late is not None
        and not known_references(session).holds(partner_id, reference)
    ):
        # Written with the person's rows, in the same statement (hub.staged): a plain insert
        # that fails if the reference is taken, and then the caller runs again, claiming first.
        staged.stage(session, _REFERENCES, [_reference_row(pid, partner_id, reference)])
        late.append((partner_id, reference))
        return _create(session, person, pid)
    if not reference or _link(session, pid, partner_id, reference):
        return _create(session, person, pid)
    linked = _by_reference(session, partner_id, person.partner_reference)
    if linked is None:  # pragma: no cover - the insert just found the reference
        raise Conflict("person.partner_reference changed meanwhile; retry")
    return linked


def references_late(session: Session, work: Callable[[], T]) -> T:
    """``work()``, with a new person's partner reference written together with the person's
    other rows instead of claimed in a statement of its own first: on PostgreSQL one
    statement and one round trip fewer per new person.

    If such a reference turns out taken (a request before introduced it, or one running now
    committed it first), the statement fails on the reference's unique key. The transaction is
    then rolled back (in a shared transaction the others run again alone, hub.commits) and
    ``work()`` runs once more the way :func:`resolve_person` always did on its own: claim
    first, then read the person the reference names. ``work`` must stage again whatever it
    needs after a rollback. Outside this block, and on SQLite (one writer at a time, no
    combined statement), a reference is claimed first.

    References seen taken or written are remembered in this process, for each database (a
    bounded set of keyed digests, not the references: :func:`known_references`), so that a
    partner's next referral for the same person claims first instead of failing once.
    """
    if session.get_bind().dialect.name != "postgresql":
        return work()
    known = known_references(session)
    late: list[tuple[str, str]] = []
    session.info[_LATE] = late
    try:
        result = work()
        if late:
            # Written here, inside, where a reference found taken can be caught (other rows
            # may wait for a later statement, as without this block).
            staged.write(session)
    except IntegrityError as exc:
        if not late or getattr(getattr(exc.orig, "diag", None), "constraint_name", None) != _TAKEN:
            raise
        session.rollback()
    else:
        known.add(late)
        return result
    finally:
        session.info.pop(_LATE, None)
    known.add(late)
    return work()


class _KnownReferences:
    """(partner, reference) pairs seen taken or written, as keyed digests, the most recent
    ``most``: a hint only. A pair missing costs a request one failed statement, a pair held
    wrongly one statement more."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._key = secrets.token_bytes(32)  # never leaves the process
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def _digest(self, partner_id: str, reference: str) -> bytes:
        pair = f"{partner_id}\x00{reference}".encode()
        return hashlib.blake2b(pair, key=self._key, digest_size=16).digest()

    def holds(self, partner_id: str, reference: str) -> bool:
        return self._digest(partner_id, reference) in self._seen

    def add(self, pairs: list[tuple[str, str]]) -> None:
        digests = [self._digest(partner, reference) for partner, reference in pairs]
        with self._lock:
            for digest in digests:
                self._seen[digest] = None
                self._seen.move_to_end(digest)
            while len(self._seen) > self._most:
                self._seen.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_KNOWN: weakref.WeakKeyDictionary[Engine, _KnownReferences] = weakref.WeakKeyDictionary()
_KNOWN_LOCK = threading.Lock()


def known_references(session: Session) -> _KnownReferences:
    """The references this process saw written or taken in the session's database."""
    engine = session.get_bind().engine
    known = _KNOWN.get(engine)
    if known is None:
        with _KNOWN_LOCK:
            known = _KNOWN.get(engine) or _KNOWN.setdefault(engine, _KnownReferences(20_000))
    return known


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


def _create(session: Session, person: PersonIn, pid: str) -> StagedPerson:
    expect_new(session, pid)
    birth = person.birth_date.isoformat() if person.birth_date else None
    given, family, born = seal_values(session, pid, person.given_name, person.family_name, birth)
    values = {
        "id": pid,
        "given_name": given,
        "family_name": family,
        "birth_date": born,
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
    # The row as staged, not known to the session: it is written with the transaction's
    # next statement, and nothing in this transaction looks the new person up. Not an ORM
    # object: making one costs more than sealing the three fields.
    return StagedPerson(pid, given, family, born)


def _by_reference(session: Session, partner_id: str, reference: str | None) -> Person | None:
    if not reference:
        return None
    params = {"partner_id": partner_id, "reference": reference}
    return session.scalars(_BY_REFERENCE, params).first()


def _link(session: Session, person_id: str, partner_id: str, reference: str) -> bool:
    """Link the partner's reference to the person; False if the reference is taken."""
    return insert_if_absent(
        session, PersonReference, _reference_row(person_id, partner_id, reference)
    )


def _reference_row(person_id: str, partner_id: str, reference: str) -> dict[str, object]:
    return {
        "person_id": person_id,
        "partner_id": partner_id,
        "reference": reference,
        "reference_key": reference_key(reference),
        "created_at": utcnow(),
    }
