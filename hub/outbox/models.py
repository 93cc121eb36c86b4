"""The transactional outbox: events committed together with the state they describe."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("topic", "event_id", "replay"),
        Index("ix_outbox_unpublished", "published_at", "id"),
        # Only the rows still owed to some consumer: few, whatever the outbox's age.
        Index(
            "ix_outbox_unsettled",
            "id",
            sqlite_where=text("settled_at IS NULL"),
            postgresql_where=text("settled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[str | None] = mapped_column(String(100))
    headers: Mapped[list[list[str]]] = mapped_column(JSON)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The broker acknowledged it (a broker that forgets may still lose it).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Every consumer group that must apply it did (hub.outbox.settlement); until then the
    #: relay sends it again to a broker it has not met before.
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0 for the original; a dead letter replayed by staff is published again as 1, 2, …
    replay: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class BrokerEpoch(Base):
    """The broker the relay last published to, by the id it gave the epoch topic (one row)."""

    __tablename__ = "broker_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[str] = mapped_column(String(100))
    met_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
