"""Per-partner push delivery state: paused or healthy, last success, last error."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


class DeliveryState(Base):
    __tablename__ = "delivery_state"

    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    paused: Mapped[bool] = mapped_column(default=False)
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    dead_lettered: Mapped[int] = mapped_column(Integer, default=0)
