"""Clock instances per referral (kept current by the deadline consumer) and the notices sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class ClockInstance(Base):
    """Where one clock of one referral stands; the scheduler's index of what falls due."""

    __tablename__ = "clock_instances"
    __table_args__ = (
        UniqueConstraint("referral_id", "name"),
        Index("ix_clock_instances_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(64))
    referral_type: Mapped[str] = mapped_column(String(64))
    performer_id: Mapped[str] = mapped_column(String(64), index=True)
    requester_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(70))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suggestion: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadlineNotice(Base):
    """A deadline-due event already emitted: one warning and one expiry per clock instance."""

    __tablename__ = "deadline_notices"
    __table_args__ = (UniqueConstraint("referral_id", "name", "kind", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[str] = mapped_column(String(36))
    emitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
