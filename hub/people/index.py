"""The blind index of people's names and birth dates, and the search over it.

Written in the transaction that stores a person's name (``index_person``), emptied by
erasure (``forget``). The rows hold only HMAC digests (hub.crypto.blind) of folded terms
(hub.people.names): ``token`` per name token, ``phonetic`` per token's Kölner Phonetik key,
``birth_date`` of the ISO date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from hub import staged
from hub.crypto.blind import digest
from hub.db import table_of
from hub.people.models import PersonIndexEntry
from hub.people.names import NameQuery, koelner, name_tokens

TOKEN, PHONETIC, BIRTH_DATE = "token", "phonetic", "birth_date"
_TABLE = table_of(PersonIndexEntry)
# RETURNING makes SQLAlchemy send the rows as one multi-row INSERT ("insertmanyvalues");
# without it psycopg sends one INSERT per row in a pipeline, which cost the gateway more
# CPU than any other statement of a referral.
_INSERT_ROWS = insert(_TABLE).returning(_TABLE.c.person_id)


def index_entries(
    session: Session, *, given_name: str | None, family_name: str | None, birth_date: str | None
) -> list[tuple[str, bytes]]:
    """(kind, digest) of everything the search may find a person by."""
    terms: dict[tuple[str, str], None] = {}
    for token in name_tokens(given_name, family_name):
        terms[(TOKEN, token)] = None
        if phonetic := koelner(token):
            terms[(PHONETIC, phonetic)] = None
    if birth_date:
        terms[(BIRTH_DATE, birth_date)] = None
    return [(kind, digest(session, kind, term)) for kind, term in terms]


def index_person(
    session: Session,
    *,
    person_id: str,
    given_name: str | None,
    family_name: str | None,
    birth_date: str | None,
    new: bool = False,
) -> None:
    """Replace the person's index rows with those of this name and birth date (ISO); a
    ``new`` person has none to replace, and its rows are staged with the person's own."""
    if not new:
        forget(session, person_id)
    rows = [
        {"person_id": person_id, "kind": kind, "digest": d}
        for kind, d in index_entries(
            session, given_name=given_name, family_name=family_name, birth_date=birth_date
        )
    ]
    if new:
        staged.stage(session, _TABLE, rows)  # with the new person's row (hub.staged)
    elif rows:
        session.execute(_INSERT_ROWS, rows).all()


def forget(session: Session, person_id: str) -> None:
    """Remove every index row of the person (erasure, or before re-indexing)."""
    session.execute(delete(_TABLE).where(_TABLE.c.person_id == person_id))


@dataclass(frozen=True)
class NameHit:
    """A person whose index matches every token of the query; ``exact`` tokens matched as
    written (after folding), the others only by sound."""

    person_id: str
    exact: int


def search(session: Session, *, query: NameQuery, limit: int) -> list[NameHit]:
    """People matching every query token (as token or by sound) and the birth date if given;
    more exact matches first."""
    if not query.tokens:
        return []
    stmt = search_statement(session, query=query, limit=limit)
    return [NameHit(person_id, int(exact)) for person_id, exact in session.execute(stmt)]


def search_statement(session: Session, *, query: NameQuery, limit: int) -> Select[Any]:
    """The search's one query: index rows of any query term, grouped by person."""
    c = _TABLE.c
    per_token = []
    wanted = []
    for token in query.tokens:
        exact, sound = digest(session, TOKEN, token), digest(session, PHONETIC, koelner(token))
        per_token.append(
            func.max(
                case(
                    (and_(c.kind == TOKEN, c.digest == exact), 2),
                    (and_(c.kind == PHONETIC, c.digest == sound), 1),
                    else_=0,
                )
            )
        )
        wanted += [
            and_(c.kind == TOKEN, c.digest == exact),
            and_(c.kind == PHONETIC, c.digest == sound),
        ]
    having = [score > 0 for score in per_token]
    if query.birth_date is not None:
        born = digest(session, BIRTH_DATE, query.birth_date.isoformat())
        wanted.append(and_(c.kind == BIRTH_DATE, c.digest == born))
        having.append(func.max(case((c.kind == BIRTH_DATE, 1), else_=0)) == 1)
    exact_count = sum((_exact(score) for score in per_token), literal(0))
    return (
        select(c.person_id, exact_count.label("exact"))
        .where(or_(*wanted))
        .group_by(c.person_id)
        .having(and_(*having))
        .order_by(exact_count.desc(), c.person_id)
        .limit(limit)
    )


def _exact(score: Any) -> Any:
    return case((score == 2, 1), else_=0)
