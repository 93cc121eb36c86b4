"""The audit signing key: Ed25519, wrapped by a master key like the per-person data keys.

The private key exists in clear only in the sequencer's memory. It is wrapped with
AES-256-GCM under the current master key, with the key's id as associated data, so a wrapped
key copied onto another row does not unwrap. Rotation adds a new key and retires the old
one; retired keys stay published, since the checkpoints they signed must stay verifiable.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.audit.models import AuditKey
from hub.audit.note import VerifierKey, raw_public_key
from hub.crypto.errors import MasterKeyMissing
from hub.crypto.fields import MASTER_KEYS
from hub.db import utcnow

NONCE_BYTES = 12


class AuditKeyError(RuntimeError):
    """The audit key cannot be used: its master key is gone or the wrapped key was altered."""


def published_keys(session: Session) -> list[VerifierKey]:
    """Every audit key's public half, current and retired, oldest first."""
    rows = session.execute(
        select(AuditKey.name, AuditKey.public_key).order_by(AuditKey.created_at, AuditKey.id)
    )
    return [VerifierKey(name, bytes(public)) for name, public in rows]


def current_signer(session: Session, *, name: str) -> tuple[VerifierKey, Ed25519PrivateKey]:
    """The key that signs new checkpoints; created on first use."""
    row = session.scalars(
        select(AuditKey).where(AuditKey.retired_at.is_(None)).order_by(AuditKey.created_at.desc())
    ).first()
    if row is None:
        return create_key(session, name=name)
    return VerifierKey(row.name, bytes(row.public_key)), _unwrap(session, row)


def create_key(session: Session, *, name: str) -> tuple[VerifierKey, Ed25519PrivateKey]:
    """A new signing key that replaces the current one (which is retired, not deleted)."""
    private = Ed25519PrivateKey.generate()
    verifier = VerifierKey(name, raw_public_key(private))
    keys, current_kid = session.info[MASTER_KEYS]
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    nonce = os.urandom(NONCE_BYTES)
    wrapped = nonce + AESGCM(keys[current_kid]).encrypt(nonce, raw, verifier.text().encode())
    now = utcnow()
    session.execute(update(AuditKey).where(AuditKey.retired_at.is_(None)).values(retired_at=now))
    session.add(
        AuditKey(
            id=verifier.text(),
            name=name,
            public_key=verifier.public_key,
            wrapped_private_key=wrapped,
            master_key_id=current_kid,
            created_at=now,
        )
    )
    session.flush()
    return verifier, private


def rewrap(session: Session, to_kid: str) -> int:
    """Wrap every audit key under master key ``to_kid``; the number re-wrapped."""
    keys, _ = session.info[MASTER_KEYS]
    if to_kid not in keys:
        raise ValueError(f"master key {to_kid!r} is not configured (HUB_MASTER_KEYS)")
    count = 0
    for row in session.scalars(select(AuditKey).where(AuditKey.master_key_id != to_kid)):
        raw = _unwrap(session, row).private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        nonce = os.urandom(NONCE_BYTES)
        row.wrapped_private_key = nonce + AESGCM(keys[to_kid]).encrypt(nonce, raw, row.id.encode())
        row.master_key_id = to_kid
        count += 1
    return count


def _unwrap(session: Session, row: AuditKey) -> Ed25519PrivateKey:
    keys, _ = session.info[MASTER_KEYS]
    master = keys.get(row.master_key_id)
    if master is None:
        raise MasterKeyMissing(row.master_key_id)
    wrapped = bytes(row.wrapped_private_key)
    try:
        raw = AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], row.id.encode())
    except InvalidTag as exc:
        raise AuditKeyError(
            f"the audit key {row.id} does not unwrap: altered or misplaced"
        ) from exc
    private = Ed25519PrivateKey.from_private_bytes(raw)
    if raw_public_key(private) != bytes(row.public_key):
        raise AuditKeyError(f"the audit key {row.id} does not match its public key")
    return private
