"""The portal's tables: one-time access codes, client sessions, citizen-login links.

Every secret is stored only as a hash: the access code a caseworker hands over, the session
token in the client's cookie, and the citizen login's subject (a keyed hash, so that the
table names no one an outsider could look up).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime, utcnow


class ClientInvite(Base):
    """A one-time access code for one person: valid until ``expires_at``, used once.

    ``failed_attempts`` counts wrong birth dates entered with this code; at the limit the
    code is revoked (``revoked_reason`` ``too-many-attempts``)."""

    __tablename__ = "client_invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class ClientSession(Base):
    """A client's browser session: the cookie holds a random token, the table its hash."""

    __tablename__ = "client_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    invite_id: Mapped[str | None] = mapped_column(ForeignKey("client_invites.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(8))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CitizenLink(Base):
    """A citizen login (issuer and subject, as a keyed hash) that opens one person's case.

    Made once, when a client who signed in with the city's citizen login also enters a
    valid access code and birth date; later sign-ins need no code. Revoking that code
    removes the link too (``invite_id``): a letter that reached the wrong hands must not
    leave a login behind."""

    __tablename__ = "citizen_links"

    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    invite_id: Mapped[str] = mapped_column(ForeignKey("client_invites.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
