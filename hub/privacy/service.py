"""Sealing and opening personal fields, and erasing a person (crypto-shredding).

The master keys travel with every database session (``session.info``, set in bootstrap), so
any service that holds a session can seal or open the fields of the person it works on
without threading key material through every call.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.db import utcnow
from hub.errors import InvalidInput, NotFound
from hub.events.service import attributes_for
from hub.inbox.models import InboxMessage
from hub.outbox.service import add_event
from hub.people.models import Person, PersonReference
from hub.privacy.crypto import FieldCipher
from hub.privacy.keystore import DbKeyStore
from hub.referrals.models import Referral, StaffNote, StatusHistory
from hub.routing.models import RoutingHold
from schemas.cloudevents import EventType
from schemas.messages import PersonErased

MASTER_KEYS = "master_keys"
PERSON_PATHS = ["person.given_name", "person.family_name", "person.birth_date"]
ERASURE_REASONS = ("request-art-17", "retention-expired", "unlawful-processing", "court-order")


def cipher(session: Session) -> FieldCipher:
    """A cipher over the data keys reachable through this session."""
    keys, current = session.info[MASTER_KEYS]
    return FieldCipher(DbKeyStore(session, keys, current))


def seal_event(session: Session, person_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Encrypt the personal fields of event data: person details, payload values, note."""
    paths = [*PERSON_PATHS, "note", *(f"payload.{k}" for k in data.get("payload") or {})]
    return cipher(session).encrypt_fields(person_id, data, paths)


def open_event(session: Session, person_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Decrypt them again; an erased person's fields read as erased."""
    paths = [*PERSON_PATHS, "note", *(f"payload.{k}" for k in data.get("payload") or {})]
    return cipher(session).decrypt_fields(person_id, data, paths)


def seal_value(session: Session, person_id: str, value: str | None) -> str | None:
    """One personal value, encrypted (None stays None)."""
    return None if value is None else cipher(session).encrypt(person_id, value)


def open_value(session: Session, person_id: str, value: str | None) -> str | None:
    """One stored value, decrypted or marked erased."""
    if value is None:
        return None
    opened = cipher(session).decrypt_fields(person_id, {"v": value}, ["v"])["v"]
    return str(opened)


def erase_person(session: Session, *, person_id: str, reason: str, by: str, topic: str) -> None:
    """Delete the person's data key and tombstone what the hub projects about them.

    Every encrypted copy (Kafka topics, dead letters, the outbox, backups) becomes unreadable
    with the key; the rows here lose what little is not encrypted (partner references).
    """
    if reason not in ERASURE_REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(ERASURE_REASONS)}", field="reason")
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    cipher(session).keys.erase(person_id)
    person.given_name = person.family_name = person.birth_date = None
    session.execute(delete(PersonReference).where(PersonReference.person_id == person_id))
    referral_ids = select(Referral.id).where(Referral.person_id == person_id)
    session.execute(update(Referral).where(Referral.person_id == person_id).values(payload={}))
    session.execute(
        update(StatusHistory).where(StatusHistory.referral_id.in_(referral_ids)).values(note=None)
    )
    session.execute(delete(StaffNote).where(StaffNote.person_id == person_id))
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.referral_id.in_(referral_ids))
        .values(data={"person_id": person_id, "erased": True})
    )
    session.execute(
        update(RoutingHold)
        .where(RoutingHold.person_id == person_id)
        .values(data={"person_id": person_id, "erased": True})
    )
    audit(
        session,
        actor_type="staff" if by.startswith("staff:") else "system",
        actor=by,
        action="person.erased",
        person_id=person_id,
        details={"reason": reason},
    )
    now = utcnow()
    erased = PersonErased(
        event_id=uuid.uuid4(),
        person_id=person_id,
        acting_partner="hub",
        occurred_at=now,
        recorded_at=now,
        correlation_id=uuid.uuid4(),
        reason=reason,
    )
    add_event(
        session, topic=topic, attrs=attributes_for(EventType.PERSON_ERASED, erased), data=erased
    )
