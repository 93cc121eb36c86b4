"""Per-person data keys: the ``KeyStore`` interface and its implementation in our database."""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import CursorResult, bindparam, event, select, text, update
from sqlalchemy.orm import Session, SessionTransaction

from hub import staged
from hub.crypto.errors import CipherError, MasterKeyMissing, PersonErased
from hub.crypto.models import PersonKey
from hub.db import insert_if_absent, table_of, utcnow
from hub.settings import Settings

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the 96-bit nonce GCM is specified for
DEV_KEY_FILE = "master.key"
REWRAP_BATCH = 500
LOAD_BATCH = 500  # ids per query of load_many
_KEYS = table_of(PersonKey)
#: The live keys among some people: built once, a Core statement (the ORM's would cost a
#: consumer's poll more than the query; only the ids change, as an expanding parameter).
_LIVE_KEYS = select(_KEYS.c.person_id, _KEYS.c.wrapped_key, _KEYS.c.master_key_id).where(
    _KEYS.c.person_id.in_(bindparam("ids", expanding=True)), _KEYS.c.erased_at.is_(None)
)


#: ``session.info`` key of the data keys unwrapped in the open transaction (see below).
UNWRAPPED = "hub.crypto.unwrapped_keys"
#: ``session.info`` key of the person ids minted in the open transaction (``expect_new``).
FRESH = "hub.crypto.fresh_people"


def _unwrapped(session: Session) -> dict[str, bytes]:
    keys: dict[str, bytes] = session.info.setdefault(UNWRAPPED, {})
    return keys


@event.listens_for(Session, "after_transaction_end")
def _forget_unwrapped(session: Session, transaction: SessionTransaction) -> None:
    """Unwrapped keys live no longer than the transaction that read them: a key erased by
    another transaction afterwards must not be used from here."""
    if transaction.parent is None:
        session.info.pop(UNWRAPPED, None)
        session.info.pop(FRESH, None)


def expect_new(session: Session, person_id: str) -> None:
    """Note that ``person_id`` was minted just now (128 random bits, never used): its key
    is created without a look first, and its row is staged with the person's (hub.staged)."""
    session.info.setdefault(FRESH, set()).add(person_id)


class KeyStore(Protocol):
    """Where per-person data keys live: our database, or a KMS implementing the same calls."""

    def data_key(self, person_id: str, *, create: bool) -> bytes | None:
        """The data key; None if erased or absent; PersonErased if erased and ``create``."""
        ...

    def erase(self, person_id: str) -> bool:
        """Destroy the data key for good; True if a key existed, False if there was none."""
        ...

    def is_erased(self, person_id: str) -> bool:
        """True once the person's data key was erased."""
        ...

    def rewrap_all(self, new_master_key_id: str) -> int:
        """Wrap every data key under that master key; the number of keys re-wrapped."""
        ...


class DbKeyStore:
    """Data keys in ``person_keys``, each wrapped under a master key that is not in the database.

    * A data key is 32 random bytes. It exists in clear only in memory; the table holds it
      wrapped with AES-256-GCM under the current master key, with the person id as associated
      data, so a wrapped key copied onto another person's row does not unwrap (CipherError).
      GCM rather than AES key wrap (RFC 3394/5649): key wrap has no associated data to bind
      the person id. Random 96-bit nonces are safe for 2^32 wraps per master key, far above
      our number of people times rotations.
    * Unwrapping uses the row's ``master_key_id``, so rotation is gradual: configure the new
      key everywhere and make it current (new keys use it), run ``rewrap_all`` (``hub keys
      rewrap --to KID``, safe to re-run), then remove the old key. Retiring old master keys
      is also what makes the wrapped keys in old database backups unreadable.
    * ``erase`` overwrites the wrapped key with NULL and keeps a tombstone row: erased stays
      distinct from "never had a key", and ``data_key(create=True)`` refuses (PersonErased),
      so a replayed event cannot mint a new key for an erased person. On SQLite, erasing turns
      on ``secure_delete`` so the old bytes are zeroed in the file; PostgreSQL keeps the old
      row version until VACUUM.
    * Writes are compare-and-swap UPDATEs and ``INSERT … ON CONFLICT DO NOTHING``: a rewrap
      racing an erase cannot bring the erased key back, and two first uses of one person
      agree on one key (the second reads back the first's).
    * Never commits: the caller's unit of work does.
    """

    def __init__(self, session: Session, master_keys: dict[str, bytes], current_kid: str) -> None:
        for kid, key in master_keys.items():
            _check_length(kid, key)
        if current_kid not in master_keys:
            raise ValueError(f"master key {current_kid!r} is not among the configured keys")
        self.session = session
        self.current_kid = current_kid
        self._master_keys = dict(master_keys)

    def data_key(self, person_id: str, *, create: bool) -> bytes | None:
        """The data key; None if erased or absent; PersonErased if erased and ``create``."""
        # One request seals several values of one person; the ORM's identity map holds rows
        # only weakly, so without this every value cost a SELECT and an unwrap.
        known = _unwrapped(self.session)
        if person_id in known:
            return known[person_id]
        key = self._load(person_id, create=create)
        if key is not None:
            known[person_id] = key
        return key

    def load_many(self, person_ids: Iterable[str]) -> None:
        """Unwrap the data keys of these people in one query, for the rest of the transaction.

        For a consumer opening the events of a whole poll: one SELECT instead of one per
        person. People without a live key (absent, erased) are left to ``data_key``.
        """
        known = _unwrapped(self.session)
        wanted = sorted({p for p in person_ids if p and p not in known})
        for start in range(0, len(wanted), LOAD_BATCH):
            rows = self.session.execute(_LIVE_KEYS, {"ids": wanted[start : start + LOAD_BATCH]})
            for person_id, wrapped, kid in rows:
                if wrapped is not None and kid is not None:
                    known[person_id] = self._unwrap(person_id, wrapped, kid)

    def _load(self, person_id: str, *, create: bool) -> bytes | None:
        fresh = create and person_id in self.session.info.get(FRESH, ())
        row = None if fresh else self.session.get(PersonKey, person_id)
        if row is None and create:
            key = self._create(person_id, fresh=fresh)
            if key is not None:
                return key
            # Another transaction used this person first (or erased them): theirs is the key.
            row = self.session.get(PersonKey, person_id)
        if row is None:
            return None
        if row.erased_at is not None or row.wrapped_key is None or row.master_key_id is None:
            if create:
                raise PersonErased(person_id)
            return None
        return self._unwrap(person_id, row.wrapped_key, row.master_key_id)

    def erase(self, person_id: str) -> bool:
        """Destroy the data key for good; True if a key existed, False if there was none."""
        _unwrapped(self.session).pop(person_id, None)
        self._overwrite_freed_bytes()
        if self._erase_row(person_id):
            return True
        if self.session.get(PersonKey, person_id) is not None:
            return False
        now = utcnow()
        if insert_if_absent(
            self.session, PersonKey, {"person_id": person_id, "created_at": now, "erased_at": now}
        ):
            return False
        # A concurrent first use created a key between our UPDATE and INSERT: erase that one.
        return self._erase_row(person_id)

    def is_erased(self, person_id: str) -> bool:
        """True once the person's data key was erased."""
        row = self.session.get(PersonKey, person_id)
        return row is not None and row.erased_at is not None

    def rewrap_all(self, new_master_key_id: str) -> int:
        """Wrap every data key under that master key; the number of keys re-wrapped."""
        if new_master_key_id not in self._master_keys:
            raise ValueError(
                f"master key {new_master_key_id!r} is not configured (HUB_MASTER_KEYS)"
            )
        # Retiring a master key should leave no readable copy under it in the file either.
        self._overwrite_freed_bytes()
        self.current_kid = new_master_key_id
        count, after = 0, ""
        while batch := self._batch_to_rewrap(new_master_key_id, after):
            for person_id, wrapped, kid in batch:
                key = self._unwrap(person_id, wrapped, kid)
                count += self._swap(person_id, wrapped, new_master_key_id, key)
            after = batch[-1][0]
        return count

    def _create(self, person_id: str, *, fresh: bool = False) -> bytes | None:
        """A new data key, stored; None if the person has a row already.

        A ``fresh`` id was minted in this transaction (128 random bits): no other can have
        used it, so its row is staged with the person's own (hub.staged) instead of inserted
        and checked at once.
        """
        key = os.urandom(KEY_BYTES)
        row = {
            "person_id": person_id,
            "wrapped_key": self._wrap(person_id, key, self.current_kid),
            "master_key_id": self.current_kid,
            "created_at": utcnow(),
        }
        if fresh:
            staged.stage(self.session, table_of(PersonKey), [row])
            return key
        return key if insert_if_absent(self.session, PersonKey, row) else None

    def _erase_row(self, person_id: str) -> bool:
        result = self.session.execute(
            update(PersonKey)
            .where(PersonKey.person_id == person_id, PersonKey.erased_at.is_(None))
            .values(wrapped_key=None, master_key_id=None, erased_at=utcnow())
        )
        return cast("CursorResult[Any]", result).rowcount == 1

    def _batch_to_rewrap(self, kid: str, after: str) -> list[tuple[str, bytes, str]]:
        rows = self.session.execute(
            select(PersonKey.person_id, PersonKey.wrapped_key, PersonKey.master_key_id)
            .where(
                PersonKey.person_id > after,
                PersonKey.erased_at.is_(None),
                PersonKey.master_key_id != kid,
            )
            .order_by(PersonKey.person_id)
            .limit(REWRAP_BATCH)
        ).all()
        return [(pid, wrapped, k) for pid, wrapped, k in rows if wrapped is not None and k]

    def _swap(self, person_id: str, old: bytes, kid: str, key: bytes) -> int:
        # Only if the row still holds the key we read: an erase committed meanwhile wins.
        result = self.session.execute(
            update(PersonKey)
            .where(
                PersonKey.person_id == person_id,
                PersonKey.wrapped_key == old,
                PersonKey.erased_at.is_(None),
            )
            .values(wrapped_key=self._wrap(person_id, key, kid), master_key_id=kid)
        )
        return cast("CursorResult[Any]", result).rowcount

    def _wrap(self, person_id: str, key: bytes, kid: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._master_keys[kid]).encrypt(nonce, key, person_id.encode())

    def _unwrap(self, person_id: str, wrapped: bytes, kid: str) -> bytes:
        master = self._master_keys.get(kid)
        if master is None:
            raise MasterKeyMissing(kid)
        nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
        try:
            return AESGCM(master).decrypt(nonce, sealed, person_id.encode())
        except InvalidTag as exc:
            raise CipherError(
                f"the data key of person {person_id} does not unwrap: tampered or moved"
            ) from exc

    def _overwrite_freed_bytes(self) -> None:
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(text("PRAGMA secure_delete=ON"))


def master_keys_from(settings: Settings) -> tuple[dict[str, bytes], str]:
    """The master keys by id and the current id; in development a generated local key file."""
    if settings.master_keys:
        keys = {kid: _decode(kid, value) for kid, value in settings.master_keys.items()}
        current = settings.master_key_id
        if current is None or current not in keys:
            raise ValueError("HUB_MASTER_KEY_ID must name one of the keys in HUB_MASTER_KEYS")
        return keys, current
    if settings.profile != "development":
        raise ValueError("production profile needs HUB_MASTER_KEYS and HUB_MASTER_KEY_ID")
    return _development_keys(settings.data_dir / DEV_KEY_FILE)


def _development_keys(path: Path) -> tuple[dict[str, bytes], str]:
    if not path.exists():
        _create_key_file(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or len(doc) != 1:
        raise ValueError(f"{path} must hold exactly one key: {{key id: base64}}")
    ((kid, value),) = doc.items()
    return {kid: _decode(kid, value)}, kid


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random id: a lost key file then shows as "master key not configured", not as tampering.
    doc = {f"dev-{secrets.token_hex(4)}": base64.b64encode(os.urandom(KEY_BYTES)).decode()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".master.key.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        # link() fails if the file exists: processes starting at once all use the first key,
        # and nobody ever reads a half-written file.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _decode(kid: str, value: object) -> bytes:
    try:
        key = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"master key {kid!r} is not valid base64") from exc
    _check_length(kid, key)
    return key


def _check_length(kid: str, key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"master key {kid!r} has {len(key)} bytes; AES-256 needs exactly 32")
