"""Timeline entries: the per-person projection of every event, across partners."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class TimelineEntry(Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (Index("ix_timeline_person_occurred", "person_id", "occurred_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    referral_id: Mapped[str | None] = mapped_column(String(36), index=True)
    referral_type: Mapped[str | None] = mapped_column(String(64))
    source_partner: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(120))
    status: Mapped[str | None] = mapped_column(String(32))
    business_status: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(32))
    legal_basis: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    projected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
