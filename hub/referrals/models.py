"""Referrals, their status history and the stored answers for idempotent POSTs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_requester_created", "requester_id", "created_at", "id"),
        Index("ix_referrals_performer_created", "performer_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    requester_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    performer_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    business_status: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    correlation_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when retention shredded the payload (hub/privacy/retention.py): never due again.
    shredded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic locking: two concurrent status changes cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)

    history: Mapped[list[StatusHistory]] = relationship(
        order_by="StatusHistory.id", back_populates="referral"
    )

    __mapper_args__ = {"version_id_col": version}


class StatusHistory(Base):
    __tablename__ = "referral_status_history"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    business_status: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)

    referral: Mapped[Referral] = relationship(back_populates="history")


class IdempotencyRecord(Base):
    """The first answer to a POST with an ``Idempotency-Key``, replayed for repeats."""

    __tablename__ = "idempotency_records"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StaffNote(Base):
    """A note Talent Center staff add to a referral.

    The text is sealed with the person's key, so erasure makes every copy unreadable; erasure
    deletes the rows as well.
    """

    __tablename__ = "staff_notes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    author: Mapped[str] = mapped_column(String(254))
    purpose: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
