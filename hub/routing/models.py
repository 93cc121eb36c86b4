"""Routed events the router held back, e.g. because consent was withdrawn before routing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class RoutingHold(Base):
    __tablename__ = "routing_holds"
    __table_args__ = (UniqueConstraint("event_id", "recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(120))
    recipient: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str | None] = mapped_column(String(36), index=True)
    person_id: Mapped[str] = mapped_column(String(70), index=True)
    reason: Mapped[str] = mapped_column(String(300))
    # The event as the router saw it, so that a release routes exactly that event.
    headers: Mapped[list[list[str]]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
