"""Tables of the authorization server: our signing keys and seen client assertions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class SigningKey(Base):
    """A private JWK that signs access tokens; published from ``not_before`` on."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Resource servers cache our JWKS, so a key is published before it signs anything.
    not_before: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsedAssertion(Base):
    """A client assertion ``jti`` already accepted; kept until the assertion expires."""

    __tablename__ = "used_assertions"

    # client_id first so that purging one client's expired rows uses the primary key.
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
