"""People the hub knows, under a random pseudonym, and the references partners hold for them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


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
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    partner_id: Mapped[str] = mapped_column(ForeignKey("partners.id"))
    reference: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
