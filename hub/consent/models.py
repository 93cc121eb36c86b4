"""A person's consent: the legal basis of voluntary flows such as Talent Center counselling."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_person_purpose", "person_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    purpose: Mapped[str] = mapped_column(String(32))
    partners: Mapped[list[str]] = mapped_column(JSON)
    # Staff of these purpose domains may also see what this purpose produced (e.g. a client
    # lets residence-law caseworkers see their counselling); empty by default.
    shared_with_purposes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    granted_on: Mapped[date] = mapped_column(Date)
    evidence_reference: Mapped[str] = mapped_column(String(200))
    notice_language: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64))
