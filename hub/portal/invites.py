"""One-time access codes: issued by a caseworker, redeemed once with the client's birth date.

A code is 12 characters of Crockford's base32 (60 bits), printed as ``ABCD-EFGH-JKMN``;
letters a reader might confuse (I/L/1, O/0) mean the same. Only its SHA-256 hash is stored:
60 random bits cannot be found by trying hashes, and the table alone opens nothing.
Guessing online is limited twice: a code is revoked after ``MAX_ATTEMPTS`` wrong birth
dates, and each address may try ``ATTEMPTS_PER_MINUTE`` times a minute (hub.portal.routes).
Unknown, expired, used and revoked codes get the same answer as a wrong birth date.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from hub.audit.service import record
from hub.crypto.cipher import ERASED
from hub.crypto.fields import open_value
from hub.errors import InvalidInput, NotFound
from hub.people.models import Person
from hub.portal.models import CitizenLink, ClientInvite, ClientSession
from hub.portal.words import LANGUAGES

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CODE_LENGTH = 12
DEFAULT_VALID_DAYS = 30
MAX_VALID_DAYS = 90
#: Wrong birth dates entered with one code before the code is revoked.
MAX_ATTEMPTS = 5
_SAME = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})


@dataclass(frozen=True)
class Issued:
    """A new invite: the code is shown once and never stored."""

    id: str
    code: str
    person_id: str
    expires_at: datetime
    language: str | None


def normalise(code: str) -> str:
    """The code as stored: upper case, without spaces or dashes, look-alikes unified."""
    return "".join(c for c in code.upper() if c.isalnum()).translate(_SAME)


def code_hash(code: str) -> str:
    """The SHA-256 of the normalised code, hex."""
    return hashlib.sha256(normalise(code).encode("ascii", "replace")).hexdigest()


def issue(
    session: Session,
    *,
    person_id: str,
    by: str,
    by_type: str,
    now: datetime,
    valid_days: int = DEFAULT_VALID_DAYS,
    language: str | None = None,
) -> Issued:
    """A new code for a person the hub knows and has not erased; audited."""
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise InvalidInput(f"valid_days must be between 1 and {MAX_VALID_DAYS}")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    person = session.get(Person, person_id)
    if person is None or _birth_date(session, person) is None:
        raise NotFound(f"no person {person_id} with a birth date on record")
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    invite = ClientInvite(
        id="inv_" + secrets.token_hex(8),
        code_hash=code_hash(code),
        person_id=person_id,
        language=language,
        created_by=by,
        created_at=now,
        expires_at=now + timedelta(days=valid_days),
        failed_attempts=0,
    )
    session.add(invite)
    record(
        session,
        actor_type=by_type,
        actor=by,
        action="client.invite_issued",
        person_id=person_id,
        details={"invite": invite.id, "expires_at": invite.expires_at.isoformat()},
    )
    return Issued(invite.id, pretty(code), person_id, invite.expires_at, language)


def pretty(code: str) -> str:
    """``ABCDEFGHJKMN`` as ``ABCD-EFGH-JKMN``."""
    plain = normalise(code)
    return "-".join(plain[i : i + 4] for i in range(0, len(plain), 4))


def redeem(session: Session, *, code: str, birth_date: date, now: datetime) -> ClientInvite | None:
    """The invite this code and birth date open, now used; else None (and the try counted).

    The caller's transaction must commit either way: a wrong birth date is counted."""
    invite = session.scalars(
        select(ClientInvite).where(ClientInvite.code_hash == code_hash(code)).with_for_update()
    ).first()
    if invite is None or not usable(invite, now):
        _refused(session, invite, "code_not_usable")
        return None
    person = session.get(Person, invite.person_id)
    born = _birth_date(session, person) if person else None
    if born is None or not secrets.compare_digest(born.isoformat(), birth_date.isoformat()):
        invite.failed_attempts += 1
        if invite.failed_attempts >= MAX_ATTEMPTS:
            invite.revoked_at = now
            invite.revoked_reason = "too-many-attempts"
        _refused(session, invite, "birth_date_wrong")
        return None
    invite.used_at = now
    return invite


def usable(invite: ClientInvite, now: datetime) -> bool:
    """Not used, not revoked, not expired."""
    return invite.used_at is None and invite.revoked_at is None and invite.expires_at > now


def revoke(session: Session, *, invite_id: str, by: str, by_type: str, now: datetime) -> int:
    """Revoke an invite, unlink the citizen logins linked with it and end the sessions it
    or they opened; returns how many sessions ended."""
    invite = session.get(ClientInvite, invite_id)
    if invite is None:
        raise NotFound(f"no invite {invite_id}")
    if invite.revoked_at is None:
        invite.revoked_at = now
        invite.revoked_reason = "revoked"
    unlinked = session.execute(delete(CitizenLink).where(CitizenLink.invite_id == invite_id))
    result = session.execute(
        update(ClientSession)
        .where(ClientSession.invite_id == invite_id, ClientSession.expires_at > now)
        .values(expires_at=now)
    )
    ended = int(cast("CursorResult[Any]", result).rowcount or 0)
    record(
        session,
        actor_type=by_type,
        actor=by,
        action="client.invite_revoked",
        person_id=invite.person_id,
        details={
            "invite": invite_id,
            "sessions_ended": ended,
            "citizen_logins_unlinked": int(cast("CursorResult[Any]", unlinked).rowcount or 0),
        },
    )
    return ended


def invites_of(session: Session, person_id: str) -> list[ClientInvite]:
    """A person's invites, newest first."""
    return list(
        session.scalars(
            select(ClientInvite)
            .where(ClientInvite.person_id == person_id)
            .order_by(ClientInvite.created_at.desc())
        )
    )


def _birth_date(session: Session, person: Person) -> date | None:
    value = open_value(session, person.id, person.birth_date)
    if not value or value == ERASED:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _refused(session: Session, invite: ClientInvite | None, reason: str) -> None:
    record(
        session,
        actor_type="client",
        actor="anonymous",
        action="client.login_refused",
        person_id=invite.person_id if invite else None,
        details={"reason": reason, **({"invite": invite.id} if invite else {})},
    )
