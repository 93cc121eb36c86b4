"""The hub's access-token signing keys, kept in the database and cached briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.models import SigningKey
from hub.db import utcnow

ALG = "ES256"


class SigningKeys:
    """Loads the current ES256 key, creating the first one on first use."""

    def __init__(
        self, *, cache_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
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
                # Not cached: if the caller's transaction rolls back, the key never existed.
                return _import(_create(session).private_jwk)
            key = _import(row.private_jwk)
            self._cached = (self._clock(), key)
            return key

    def public_jwks(self, session: Session) -> dict[str, Any]:
        """Every non-retired key's public part, for ``/.well-known/jwks.json``."""
        rows = session.scalars(
            select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.kid)
        )
        keys = [_import(r.private_jwk).as_dict(private=False, alg=r.alg, use="sig") for r in rows]
        return {"keys": keys}


def _newest_usable(session: Session, now: datetime) -> SigningKey | None:
    query = (
        select(SigningKey)
        .where(SigningKey.retired_at.is_(None), SigningKey.not_before <= now)
        .order_by(SigningKey.not_before.desc(), SigningKey.kid)
        .limit(1)
    )
    return session.scalars(query).first()


def _create(session: Session) -> SigningKey:
    key = ECKey.generate_key("P-256", parameters={"alg": ALG, "use": "sig"}, auto_kid=True)
    # The first key may sign at once: no resource server can hold an older JWKS yet.
    row = SigningKey(kid=key.kid, alg=ALG, private_jwk=key.as_dict(private=True))
    session.add(row)
    session.flush()
    return row


def _import(jwk: dict[str, Any]) -> ECKey:
    return ECKey.import_key(jwk)
