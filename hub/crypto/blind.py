"""The blind index key: HMAC-SHA256 over search terms, held like the per-person data keys.

A name cannot be stored in clear to be searched, nor encrypted under the person's key (the
search does not know whose key to try). The index stores HMAC-SHA256(key, kind + term)
instead: equal terms give equal digests, so equality can be queried, and without the key a
digest tells nothing, not even against a dictionary of names.

The 32-byte key is created on first use and stored wrapped with AES-256-GCM under the
current master key, its id as associated data, exactly as the data keys and the audit key
are; ``rewrap`` moves it to another master key (part of ``hub keys rewrap``). It is not
erased with a person: a person's digests are deleted instead, and digests of a deleted row
tell nothing without the key. Changing the key itself would mean re-indexing everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.crypto.errors import CipherError, MasterKeyMissing
from hub.crypto.fields import MASTER_KEYS
from hub.crypto.models import BlindIndexKey
from hub.db import insert_if_absent, utcnow

KEY_ID = "people-search-1"
KEY_BYTES = 32
NONCE_BYTES = 12
#: ``session.info`` key of the unwrapped index key (one unwrap per session, not per term).
UNWRAPPED = "hub.crypto.blind_index_key"
#: ``session.info`` key of a holder shared by every session of one process's session factory
#: (``hub.bootstrap``): the key is read and unwrapped once per process, not per request. The
#: key itself never changes (a re-wrap changes only its wrapping), so it cannot go stale.
PROCESS_CACHE = "hub.crypto.blind_index_cache"


def digest(session: Session, kind: str, term: str) -> bytes:
    """HMAC-SHA256 of ``term`` under the blind index key, separated by ``kind``."""
    message = kind.encode() + b"\0" + term.encode()
    return hmac.new(index_key(session), message, hashlib.sha256).digest()


def index_key(session: Session) -> bytes:
    """The blind index key in clear; created and stored wrapped on first use."""
    known = session.info.get(UNWRAPPED)
    if isinstance(known, bytes):
        return known
    shared = session.info.get(PROCESS_CACHE)
    if isinstance(shared, dict) and isinstance(shared.get(KEY_ID), bytes):
        session.info[UNWRAPPED] = shared[KEY_ID]
        return bytes(shared[KEY_ID])
    row = session.get(BlindIndexKey, KEY_ID)
    if row is None:
        _create(session)
        row = session.get(BlindIndexKey, KEY_ID)  # ours, or a concurrent first use's
    assert row is not None
    key = _unwrap(session, bytes(row.wrapped_key), row.master_key_id)
    session.info[UNWRAPPED] = key
    if isinstance(shared, dict):
        shared[KEY_ID] = key
    return key


def rewrap(session: Session, to_kid: str) -> int:
    """Wrap the blind index key under master key ``to_kid``; 1 if re-wrapped, else 0."""
    keys, _ = session.info[MASTER_KEYS]
    if to_kid not in keys:
        raise ValueError(f"master key {to_kid!r} is not configured (HUB_MASTER_KEYS)")
    row = session.scalars(
        select(BlindIndexKey).where(BlindIndexKey.master_key_id != to_kid)
    ).first()
    if row is None:
        return 0
    key = _unwrap(session, bytes(row.wrapped_key), row.master_key_id)
    row.wrapped_key = _wrap(keys[to_kid], key)
    row.master_key_id = to_kid
    return 1


def _create(session: Session) -> None:
    keys, current = session.info[MASTER_KEYS]
    row = {
        "id": KEY_ID,
        "wrapped_key": _wrap(keys[current], os.urandom(KEY_BYTES)),
        "master_key_id": current,
        "created_at": utcnow(),
    }
    insert_if_absent(session, BlindIndexKey, row)


def _wrap(master: bytes, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, key, KEY_ID.encode())


def _unwrap(session: Session, wrapped: bytes, kid: str) -> bytes:
    keys, _ = session.info[MASTER_KEYS]
    master = keys.get(kid)
    if master is None:
        raise MasterKeyMissing(kid)
    try:
        return AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], KEY_ID.encode())
    except InvalidTag as exc:
        raise CipherError("the blind index key does not unwrap: altered or misplaced") from exc
