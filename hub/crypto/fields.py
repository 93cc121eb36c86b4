"""Sealing and opening personal fields of one person.

The master keys travel with every database session (``session.info``, set in bootstrap), so
any service that holds a session can seal or open the fields of the person it works on
without threading key material through every call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from hub.crypto.cipher import FieldCipher
from hub.crypto.keystore import DbKeyStore

MASTER_KEYS = "master_keys"
PERSON_PATHS = ["person.given_name", "person.family_name", "person.birth_date"]


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


def seal_values(session: Session, person_id: str, *values: str | None) -> list[str | None]:
    """Several personal values of one person, encrypted with one cipher (None stays None)."""
    sealer = cipher(session)
    return [None if value is None else sealer.encrypt(person_id, value) for value in values]


def load_keys(session: Session, person_ids: Iterable[str]) -> None:
    """Unwrap these people's data keys in one query, before opening the events of a batch."""
    keys, current = session.info[MASTER_KEYS]
    DbKeyStore(session, keys, current).load_many(person_ids)


def open_value(session: Session, person_id: str, value: str | None) -> str | None:
    """One stored value, decrypted or marked erased."""
    if value is None:
        return None
    opened = cipher(session).decrypt_fields(person_id, {"v": value}, ["v"])["v"]
    return str(opened)
