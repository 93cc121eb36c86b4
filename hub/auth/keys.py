"""The hub's access-token signing keys, kept in the database and cached briefly.

Rotation (``hub keys rotate``): the new key is published in the JWKS at once but signs only
from ``not_before`` = now + the JWKS ``max-age`` we serve + clock skew, so every resource
server has seen it before the first token it signs. The old keys keep signing until then and
stay published until ``retired_at`` = that ``not_before`` + how long a process may keep using
a cached signing key + the access-token lifetime + clock skew: by then every token they signed
has expired. ``retired_at`` is written at rotation time, so retiring needs no later job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.orm import Session

from hub.auth import cache as auth_cache
from hub.auth.models import SigningKey
from hub.db import utcnow
from hub.errors import Conflict
from hub.settings import Settings

ALG = "ES256"
#: The Cache-Control max-age of /.well-known/jwks.json: how long others may hold our keys.
JWKS_MAX_AGE_SECONDS = 300
#: How long one process keeps signing with the key it loaded last.
CURRENT_KEY_CACHE_SECONDS = 60.0
#: PostgreSQL advisory lock (with the schema) taken by whoever adds a signing key.
KEYS_LOCK = 0x6B65_7973  # "keys"


class SigningKeys:
    """Loads the current ES256 key, creating the first one on first use."""

    def __init__(
        self,
        *,
        cache_seconds: float = CURRENT_KEY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, ECKey] | None = None

    def current(self, session: Session) -> ECKey:
        """The private key that signs new tokens (its ``kid`` is the RFC 7638 thumbprint)."""
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            row = _newest_usable(session, utcnow())
            if row is None:
                # Gateway workers start together: without the lock each would add a first key
                # and sign with it, and a worker that had read the JWKS between the two
                # commits would refuse the other's tokens as signed by an unknown key.
                _serialise(session)
                row = _newest_usable(session, utcnow())
            if row is None:
                # The first key signs at once: nobody can hold an older JWKS yet. Not cached:
                # if the caller's transaction rolls back, the key never existed.
                now = utcnow()
                return _import(_create(session, now, now).private_jwk)
            key = _import(row.private_jwk)
            self._cached = (self._clock(), key)
            return key

    def public_jwks(self, session: Session, now: datetime | None = None) -> dict[str, Any]:
        """Every key not yet retired, pending ones included, for ``/.well-known/jwks.json``."""
        rows = session.scalars(
            select(SigningKey).where(_published(now or utcnow())).order_by(SigningKey.kid)
        )
        keys = [_import(r.private_jwk).as_dict(private=False, alg=r.alg, use="sig") for r in rows]
        return {"keys": keys}


@dataclass(frozen=True)
class KeyInfo:
    """One signing key as ``hub keys list`` shows it."""

    kid: str
    created_at: datetime
    not_before: datetime
    retired_at: datetime | None
    state: str  # pending, signing, verifying or retired


@dataclass(frozen=True)
class Rotation:
    """What ``rotate`` did: the new key and when each older key leaves the JWKS."""

    kid: str
    not_before: datetime
    retiring: dict[str, datetime]


def retirement_time(last_signing: datetime, settings: Settings) -> datetime:
    """When a key that signs until ``last_signing`` may leave the JWKS."""
    return last_signing + timedelta(
        seconds=CURRENT_KEY_CACHE_SECONDS
        + settings.access_token_ttl_seconds
        + settings.clock_skew_seconds
    )


def rotate(
    session: Session, settings: Settings, *, now: datetime | None = None, immediate: bool = False
) -> Rotation:
    """Add a signing key and schedule the retirement of the others.

    ``immediate`` is for a compromised key: the new key signs at once and every other key is
    retired now, so tokens they signed stop working (resource servers that cached our JWKS
    refuse new tokens until they refetch it on the unknown ``kid``).
    """
    _serialise(session)
    now = now or utcnow()
    live = list(session.scalars(select(SigningKey).where(_published(now))))
    pending = [k for k in live if k.not_before > now]
    if pending and not immediate:
        raise Conflict(f"key {pending[0].kid} is still pending until {pending[0].not_before}")
    # With no key published yet, nobody can hold an older JWKS: the first key signs at once.
    delay = 0 if immediate or not live else JWKS_MAX_AGE_SECONDS + settings.clock_skew_seconds
    not_before = now + timedelta(seconds=delay)
    retire_at = now if immediate else retirement_time(not_before, settings)
    for key in live:
        if key.retired_at is None or key.retired_at > retire_at:
            key.retired_at = retire_at
    new = _create(session, not_before, now)
    if immediate:
        # Gateways remember verified tokens: those of the retired keys must be checked again.
        auth_cache.drop_after_commit(session, keys=True)
    return Rotation(new.kid, not_before, {k.kid: k.retired_at or retire_at for k in live})


def list_keys(session: Session, now: datetime | None = None) -> list[KeyInfo]:
    """Every signing key, oldest first, with its state at ``now``."""
    now = now or utcnow()
    signing = _newest_usable(session, now)
    rows = session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))
    return [
        KeyInfo(r.kid, r.created_at, r.not_before, r.retired_at, _state(r, signing, now))
        for r in rows
    ]


def _state(row: SigningKey, signing: SigningKey | None, now: datetime) -> str:
    if row.retired_at is not None and row.retired_at <= now:
        return "retired"
    if row.not_before > now:
        return "pending"
    return "signing" if signing is not None and row.kid == signing.kid else "verifying"


def _serialise(session: Session) -> None:
    """Wait for any other transaction adding a key to finish; statements after this one see
    what it committed. SQLite's BEGIN IMMEDIATE already admits one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:k, hashtext(current_schema()))"),
            {"k": KEYS_LOCK},
        )


def _published(now: datetime) -> ColumnElement[bool]:
    return or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > now)


def _newest_usable(session: Session, now: datetime) -> SigningKey | None:
    query = (
        select(SigningKey)
        .where(_published(now), SigningKey.not_before <= now)
        .order_by(SigningKey.not_before.desc(), SigningKey.kid)
        .limit(1)
    )
    return session.scalars(query).first()


def _create(session: Session, not_before: datetime, now: datetime) -> SigningKey:
    key = ECKey.generate_key("P-256", parameters={"alg": ALG, "use": "sig"}, auto_kid=True)
    row = SigningKey(
        kid=key.kid,
        alg=ALG,
        private_jwk=key.as_dict(private=True),
        created_at=now,
        not_before=not_before,
    )
    session.add(row)
    session.flush()
    return row


def _import(jwk: dict[str, Any]) -> ECKey:
    return ECKey.import_key(jwk)
