"""Queries for referrals."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from hub import staged
from hub.db import table_of
from hub.errors import InvalidInput
from hub.referrals.models import Referral, StatusHistory
from schemas.lifecycle import Role

_REFERRALS = table_of(Referral)
_HISTORY = table_of(StatusHistory)


@dataclass(frozen=True)
class NewReferral:
    """A referral just staged, as its creator answers with it.

    Not an ORM object: nothing in the transaction that creates a referral reads it back, and
    building one (and adding it to the session) cost more than staging its rows."""

    id: str
    status: str
    person_id: str


def add_new(session: Session, values: dict[str, Any], first: dict[str, Any]) -> NewReferral:
    """Stage a new referral and its first history entry, without the ORM's flush.

    They are written with the transaction's next staged rows, its outbox rows (hub.staged):
    one statement on PostgreSQL.
    """
    staged.stage(session, _REFERRALS, [{"business_status": None, "version": 1, **values}])
    staged.stage(session, _HISTORY, [{"referral_id": values["id"], **first}])
    return NewReferral(values["id"], values["status"], values["person_id"])


def get(session: Session, referral_id: str) -> Referral | None:
    """The referral with its history, or None."""
    stmt = (
        select(Referral).where(Referral.id == referral_id).options(selectinload(Referral.history))
    )
    return session.scalars(stmt).first()


def takes_part(session: Session, *, person_id: str, partner_id: str) -> bool:
    """True when the partner requested or performs one of the person's referrals."""
    stmt = select(Referral.id).where(
        Referral.person_id == person_id,
        or_(Referral.requester_id == partner_id, Referral.performer_id == partner_id),
    )
    return session.scalars(stmt.limit(1)).first() is not None


def page(
    session: Session,
    *,
    partner_id: str,
    role: Role | None,
    status: str | None,
    type_: str | None,
    limit: int,
    cursor: str | None,
    only: Select[str] | None = None,
) -> tuple[list[Referral], str | None]:
    """One page of the partner's referrals, newest first, and the cursor of the next page."""
    mine = {
        Role.REQUESTER: Referral.requester_id == partner_id,
        Role.PERFORMER: Referral.performer_id == partner_id,
    }
    stmt = select(Referral).where(mine[role] if role else or_(*mine.values()))
    if status:
        stmt = stmt.where(Referral.status == status)
    if only is not None:
        stmt = stmt.where(Referral.id.in_(only))
    if type_:
        stmt = stmt.where(Referral.type == type_)
    if cursor:
        created, rid = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Referral.created_at < created,
                and_(Referral.created_at == created, Referral.id < rid),
            )
        )
    stmt = stmt.order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, None


def encode_cursor(created_at: datetime, referral_id: str) -> str:
    """An opaque cursor for keyset pagination."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{referral_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for; a cursor we did not issue is a 422."""
    try:
        created, rid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), rid
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not valid", field="cursor") from exc
