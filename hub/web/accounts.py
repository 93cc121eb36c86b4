"""Staff accounts: password hashing, login with lockout, and server-side sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.errors import Conflict, InvalidInput, NotFound
from hub.web.models import StaffAccount, StaffSession
from schemas.catalogue import Purpose

ROLES = ("caseworker", "team_lead", "dpo", "admin")
PURPOSES: tuple[Purpose, ...] = (
    "residence",
    "counselling",
    "education",
    "employment",
    "recognition",
)

# scrypt (RFC 7914): memory-hard, in the standard library. 2**15 * 8 * 128 B = 32 MiB a hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 12
#: After this many failed logins in a row the account is locked for LOCK_MINUTES.
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
SESSION_HOURS = 8
# Verifying against this hash when the e-mail is unknown keeps both answers equally slow.
_DUMMY_HASH: str | None = None


@dataclass(frozen=True)
class Staff:
    """The logged-in staff member as the pages see them."""

    id: int
    email: str
    role: str
    purposes: frozenset[str]
    csrf_token: str
    session_hash: str


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def add_staff(
    session: Session, *, email: str, role: str, purposes: list[str], password: str | None
) -> StaffAccount:
    """Create a staff account; caseworkers and team leads need at least one purpose domain."""
    email = _normal_email(email)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    unknown = sorted(set(purposes) - set(PURPOSES))
    if unknown:
        raise InvalidInput(f"unknown purpose domain(s): {', '.join(unknown)}", field="purposes")
    if role in ("caseworker", "team_lead") and not purposes:
        raise InvalidInput(f"a {role} needs at least one purpose domain", field="purposes")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if session.scalars(select(StaffAccount.id).where(StaffAccount.email == email)).first():
        raise Conflict(f"a staff account for {email} exists already")
    account = StaffAccount(
        email=email,
        role=role,
        purposes=sorted(set(purposes)),
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(account)
    session.flush()
    return account


def list_staff(session: Session) -> list[StaffAccount]:
    """Every account, active ones first, by e-mail."""
    return list(
        session.scalars(
            select(StaffAccount).order_by(StaffAccount.active.desc(), StaffAccount.email)
        )
    )


def find_staff(session: Session, email: str) -> StaffAccount:
    """The account for ``email`` (any case), or NotFound."""
    account = session.scalars(
        select(StaffAccount).where(StaffAccount.email == _normal_email(email))
    ).first()
    if account is None:
        raise NotFound(f"no staff account {email.strip().lower()}")
    return account


def email_of(session: Session, account_id: int) -> str:
    """The e-mail address of account ``account_id``, or NotFound."""
    account = session.get(StaffAccount, account_id)
    if account is None:
        raise NotFound(f"no staff account {account_id}")
    return account.email


def set_active(session: Session, *, email: str, active: bool) -> StaffAccount:
    """Enable or disable an account; disabling ends its sessions at once. The last active
    admin cannot be disabled: nobody could enable anyone again from the UI."""
    account = find_staff(session, email)
    if not active and account.active and account.role == "admin" and _active_admins(session) <= 1:
        raise Conflict(f"{account.email} is the last active admin")
    account.active = active
    if not active:
        _end_all_sessions(session, account)
    return account


def reset_password(session: Session, *, email: str, password: str) -> StaffAccount:
    """Set a new local password, lift a lockout and end the account's sessions."""
    account = find_staff(session, email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    account.password_hash = hash_password(password)
    account.failed_logins = 0
    account.locked_until = None
    _end_all_sessions(session, account)
    return account


def _active_admins(session: Session) -> int:
    return len(
        session.scalars(
            select(StaffAccount.id).where(
                StaffAccount.role == "admin", StaffAccount.active.is_(True)
            )
        ).all()
    )


def _end_all_sessions(session: Session, account: StaffAccount) -> None:
    session.execute(delete(StaffSession).where(StaffSession.account_id == account.id))


def authenticate(
    session: Session, *, email: str, password: str, now: datetime
) -> StaffAccount | None:
    """The account for these credentials, or None; counts failures and locks after too many.

    Refusal is a return value, not an exception, so that the caller's unit of work commits
    the failure count instead of rolling it back.
    """
    account = session.scalars(
        select(StaffAccount).where(StaffAccount.email == email.strip().lower())
    ).first()
    if account is None or not account.active or account.password_hash is None:
        verify_password(password, _dummy_hash())
        return None
    if account.locked_until is not None and account.locked_until > now:
        return None
    if not verify_password(password, account.password_hash):
        account.failed_logins += 1
        if account.failed_logins >= MAX_FAILED_LOGINS:
            account.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            account.failed_logins = 0
        return None
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    return account


def start_session(session: Session, *, account: StaffAccount, now: datetime) -> str:
    """A new session for the account; returns the cookie token (a fresh id at every login)."""
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=_token_hash(token),
            account_id=account.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    return token


def load_session(session: Session, *, token: str, now: datetime) -> Staff | None:
    """The staff member behind a cookie token, or None if it is unknown or expired."""
    row = session.get(StaffSession, _token_hash(token))
    if row is None or row.expires_at <= now:
        return None
    account = session.get(StaffAccount, row.account_id)
    if account is None or not account.active:
        return None
    row.last_seen_at = now
    return Staff(
        id=account.id,
        email=account.email,
        role=account.role,
        purposes=frozenset(account.purposes),
        csrf_token=row.csrf_token,
        session_hash=row.token_hash,
    )


def end_session(session: Session, *, token: str) -> None:
    """Log out: the token stops working at once."""
    session.execute(delete(StaffSession).where(StaffSession.token_hash == _token_hash(token)))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _normal_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput("email is not an e-mail address", field="email")
    return email


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())
