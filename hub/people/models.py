"""People the hub knows, under a random pseudonym, and the references partners hold for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow
from hub.people.names import reference_key


class Person(Base):
    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(70), primary_key=True)
    # Encrypted with the person's data key (hub.crypto): tokens, never plaintext.
    given_name: Mapped[str | None] = mapped_column(Text)
    family_name: Mapped[str | None] = mapped_column(Text)
    birth_date: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PersonReference(Base):
    """A partner's own identifier for a person (Matrikelnummer, customer number, file number).

    Shown only to the partner that issued it; it never travels to another partner.
    """

    __tablename__ = "person_references"
    __table_args__ = (UniqueConstraint("partner_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Checked at commit: a new person's reference is claimed before the person is written
    # (hub.people.service.resolve_person).
    person_id: Mapped[str] = mapped_column(
        ForeignKey("people.id", deferrable=True, initially="DEFERRED"), index=True
    )
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    reference: Mapped[str] = mapped_column(String(64))
    # What staff search compares (``es012345601`` finds ``ES012345601``). The partner's own
    # look-ups stay exact: the reference is the partner's, written as it issues it.
    reference_key: Mapped[str] = mapped_column(
        String(64), index=True, default=lambda ctx: _key_of(ctx)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _key_of(context: DefaultExecutionContext) -> str:
    return reference_key(str(context.get_current_parameters()["reference"]))


class PersonIndexEntry(Base):
    """One blind index digest of a person: a name token, its phonetic key, or the birth date.

    ``digest`` is HMAC-SHA256 under the blind index key (hub.crypto.blind) of the folded
    term; no clear text is stored. (kind, digest, person_id) lets the search answer from the
    index alone.
    """

    __tablename__ = "person_index"
    __table_args__ = (Index("ix_person_index_kind_digest", "kind", "digest", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
