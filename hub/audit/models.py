"""The audit log's tables: its leaves, the signed checkpoints over them, and the signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class AuditRecord(Base):
    """One leaf of the log, written in the transaction of the effect it records.

    ``seq`` is the order of appends (from the database; a rolled-back append leaves a gap,
    which means nothing). ``leaf_index`` is the leaf's place in the Merkle tree, given by the
    sequencer without gaps once the append has committed; ``leaf_hash`` is the RFC 9162 leaf
    hash of the record's canonical form (hub.audit.service.leaf_bytes), set at the same time.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(
            "actor_type IN ('partner', 'staff', 'system', 'client')", name="actor_type"
        ),
        # What the sequencer reads every few seconds: only the leaves still without an index.
        Index(
            "ix_audit_log_unsequenced",
            "seq",
            postgresql_where=text("leaf_index IS NULL"),
            sqlite_where=text("leaf_index IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(70), index=True)
    purpose: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    leaf_hash: Mapped[str | None] = mapped_column(String(64))

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
            "leaf_index": self.leaf_index,
            "leaf_hash": self.leaf_hash,
        }


class AuditCheckpoint(Base):
    """A signed tree head: the log had ``tree_size`` leaves with root ``root_hash``.

    ``note`` is the C2SP signed note, the only part a verifier trusts; ``frontier`` lets the
    sequencer extend the tree without reading old leaves. One row per size: two sequencers
    that both believed they lead cannot both store a checkpoint of the same size."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(160))
    note: Mapped[str] = mapped_column(Text)
    frontier: Mapped[list[str]] = mapped_column(JSON)


class AuditKey(Base):
    """An Ed25519 key that signs checkpoints; the private half only wrapped by a master key.

    The current key has no ``retired_at``. Retired keys keep their public half: checkpoints
    they signed stay verifiable."""

    __tablename__ = "audit_keys"
    __table_args__ = (CheckConstraint("length(public_key) = 32", name="ed25519_public_key"),)

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
