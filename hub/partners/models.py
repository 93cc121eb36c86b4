"""Partners (public bodies connected to the hub) and their OAuth clients."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow


class Partner(Base):
    __tablename__ = "partners"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    delivery_mode: Mapped[str] = mapped_column(String(8), default="pull")
    # The connector settings for push delivery (connectors.config.ConnectorConfig as JSON);
    # secrets are references (env:, file:), never values, outside development.
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    # RFC 9449: tokens for this partner must be DPoP-bound (a proof on every token request).
    dpop_required: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    clients: Mapped[list[OAuthClient]] = relationship(back_populates="partner")


class OAuthClient(Base):
    """One set of credentials of a partner; a partner may hold several during rotation."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), index=True)
    auth_method: Mapped[str] = mapped_column(String(32))
    # SHA-256 of a 256-bit random secret: high entropy makes a slow KDF unnecessary here.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    scopes: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    partner: Mapped[Partner] = relationship(back_populates="clients")

    @property
    def scope_set(self) -> frozenset[str]:
        """The scopes this client may be granted."""
        return frozenset(self.scopes.split())
