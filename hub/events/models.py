"""The consumer inbox: which consumer has already applied which event (dedup by event id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class ProcessedEvent(Base):
    __tablename__ = "processed_events"
    # The key leads with the consumer, for "has this consumer applied it". Who applied an
    # event (the relay's settling, every second; the deliveries view) asks by event id over
    # the marks of every consumer, kept for months: without this index, a scan of them all.
    __table_args__ = (Index("ix_processed_events_event_id", "event_id"),)

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
