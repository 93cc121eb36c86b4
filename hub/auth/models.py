"""Tables of the authorization server: signing keys, seen client assertions and DPoP proofs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class SigningKey(Base):
    """A private JWK: published from creation, signs from ``not_before``, gone at ``retired_at``."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Resource servers cache our JWKS, so a key is published before it signs anything.
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set ahead of time at rotation: from then on the key is unpublished and verifies nothing.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsedAssertion(Base):
    """A client assertion ``jti`` already accepted; kept until the assertion expires."""

    __tablename__ = "used_assertions"

    # client_id first so that purging one client's expired rows uses the primary key.
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UsedDPoPProof(Base):
    """A DPoP proof already accepted (RFC 9449 §11.1); kept while its ``iat`` is in the window."""

    __tablename__ = "used_dpop_proofs"

    # SHA-256 (hex) of the proof key's thumbprint and the proof's jti: fixed length, no PII.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
