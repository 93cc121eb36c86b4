"""The audit trail and its head, the single row that serialises appends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime

GENESIS_HASH = "0" * 64


class AuditRecord(Base):
    """One entry of the trail; ``hash`` covers its content and the previous entry's hash."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("actor_type IN ('partner', 'staff', 'system')", name="actor_type"),
    )

    # Assigned from the head, never by the database: a sequence may skip numbers on rollback,
    # and a gap must mean a deleted row.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(70), index=True)
    purpose: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor_type": self.actor_type,
            "actor": self.actor,
            "action": self.action,
            "person_id": self.person_id,
            "purpose": self.purpose,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class AuditHead(Base):
    """The last appended seq and hash; its row lock makes concurrent appenders queue up."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
