"""Client sessions: a random token in the cookie, its hash in the table.

A session ends after ``IDLE_MINUTES`` without a request and at the latest after
``MAX_HOURS``; logging out, revoking the invite and erasing the person end it at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from hub.audit.service import record
from hub.portal.models import ClientSession

IDLE_MINUTES = 15
MAX_HOURS = 2


@dataclass(frozen=True)
class Client:
    """The signed-in client as the pages see them: whose case, and the form token."""

    person_id: str
    csrf_token: str
    method: str
    invite_id: str | None
    language: str | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session,
    *,
    person_id: str,
    invite_id: str | None,
    method: str,
    language: str | None,
    now: datetime,
) -> str:
    """A new session; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    session.add(
        ClientSession(
            token_hash=_hash(token),
            person_id=person_id,
            invite_id=invite_id,
            method=method,
            language=language,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=MAX_HOURS),
        )
    )
    return token


def sign_in(
    session: Session,
    *,
    replacing: str | None,
    person_id: str,
    invite_id: str | None,
    method: str,
    language: str | None,
    now: datetime,
) -> str:
    """End the browser's old session (``replacing``), start a new one and audit the sign-in;
    returns the new cookie's token."""
    if replacing:
        end(session, token=replacing)
    token = start(
        session,
        person_id=person_id,
        invite_id=invite_id,
        method=method,
        language=language,
        now=now,
    )
    record(
        session,
        actor_type="client",
        actor="client",
        action="client.login",
        person_id=person_id,
        details={"method": method, **({"invite": invite_id} if invite_id else {})},
    )
    return token


def load(session: Session, *, token: str, now: datetime) -> Client | None:
    """The live session of this token, its idle clock restarted; else None."""
    row = session.get(ClientSession, _hash(token))
    if row is None:
        return None
    if row.expires_at <= now or now - row.last_seen_at > timedelta(minutes=IDLE_MINUTES):
        session.delete(row)
        return None
    row.last_seen_at = now
    return Client(row.person_id, row.csrf_token, row.method, row.invite_id, row.language)


def end(session: Session, *, token: str) -> None:
    """End the session of this token (nothing if there is none)."""
    session.execute(delete(ClientSession).where(ClientSession.token_hash == _hash(token)))
