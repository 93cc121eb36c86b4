"""Per-person data keys, wrapped by a master key; an erased key leaves a tombstone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class PersonKey(Base):
    """One person's wrapped data key; ``erased_at`` set and no key bytes once erased.

    No foreign key to ``people``: the key must outlive (and be erasable independently of)
    the person row, which erasure tombstones. The tombstone row keeps "erased" distinct
    from "never had a key", so a replayed event cannot mint a fresh key for an erased person.
    """

    __tablename__ = "person_keys"

    person_id: Mapped[str] = mapped_column(String(70), primary_key=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BlindIndexKey(Base):
    """The HMAC key of the people search's blind index, wrapped by a master key.

    One row. The key never leaves memory in clear: without it the index rows are digests of
    nothing anyone can recompute, even with a list of every name in Germany.
    """

    __tablename__ = "blind_index_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
