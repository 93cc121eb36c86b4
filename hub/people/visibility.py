"""Which people and referrals a staff member may see: their purpose domains decide (design §9).

The staff pages call these; the rules live here, not in the routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.errors import NotFound
from hub.people import index
from hub.people.models import Person, PersonReference
from hub.people.names import parse_query, reference_key
from hub.referrals.models import Referral
from hub.timeline.models import TimelineEntry
from hub.timeline.service import visible_purposes
from schemas.catalogue import Catalogue

#: How a person was found: by hub id, by name (every token as written, or some by sound);
#: any other value is the id of the partner whose reference matched.
BY_ID, BY_NAME, BY_SOUND = "hub", "name", "sound"
#: Hits shown at most, and name candidates looked at to find them among the visible.
MOST_HITS = 20
NAME_CANDIDATES = 200


def find_people(
    session: Session, *, query: str, purposes: Iterable[str], catalogue: Catalogue
) -> list[tuple[str, str]]:
    """(person id, matched by) for a hub id, a partner reference (any case) or a name with
    perhaps a birth date, among the people the viewer may see; best matches first."""
    found: dict[str, str] = {}
    if query.startswith("p_") and session.get(Person, query) is not None:
        found[query] = BY_ID
    refs = select(PersonReference).where(PersonReference.reference_key == reference_key(query))
    for ref in session.scalars(refs.order_by(PersonReference.id).limit(MOST_HITS)):
        found.setdefault(ref.person_id, ref.partner_id)
    name_query = parse_query(query)
    for hit in index.search(session, query=name_query, limit=NAME_CANDIDATES):
        found.setdefault(
            hit.person_id, BY_NAME if hit.exact == len(name_query.tokens) else BY_SOUND
        )
    visible = (
        (person_id, matched_by)
        for person_id, matched_by in found.items()
        if may_see_person(session, person_id=person_id, purposes=purposes, catalogue=catalogue)
    )
    return list(islice(visible, MOST_HITS))


def query_kind(query: str) -> str:
    """What kind of search a query is, for the audit trail (which never holds the query)."""
    if query.startswith("p_"):
        return "id"
    parsed = parse_query(query)
    if parsed.birth_date is not None:
        return "name+birth_date"
    return "reference_or_name"


def may_see_person(
    session: Session, *, person_id: str, purposes: Iterable[str], catalogue: Catalogue
) -> bool:
    """True if any entry or referral of the person is in the viewer's purpose domains."""
    visible = visible_purposes(session, person_id=person_id, purposes=frozenset(purposes))
    has_entry = session.scalars(
        select(TimelineEntry.id)
        .where(TimelineEntry.person_id == person_id, TimelineEntry.purpose.in_(sorted(visible)))
        .limit(1)
    ).first()
    if has_entry is not None:
        return True
    has_referral = session.scalars(
        select(Referral.id)
        .where(
            Referral.person_id == person_id,
            Referral.type.in_(_types_of(catalogue, visible)),
        )
        .limit(1)
    ).first()
    return has_referral is not None


def visible_referrals(
    session: Session, *, person_id: str, purposes: Iterable[str], catalogue: Catalogue
) -> list[Referral]:
    """The person's referrals in the viewer's purpose domains, newest first."""
    visible = visible_purposes(session, person_id=person_id, purposes=frozenset(purposes))
    return list(
        session.scalars(
            select(Referral)
            .where(
                Referral.person_id == person_id,
                Referral.type.in_(_types_of(catalogue, visible)),
            )
            .order_by(Referral.created_at.desc())
        )
    )


def visible_referral(
    session: Session, *, referral_id: str, purposes: Iterable[str], catalogue: Catalogue
) -> Referral:
    """The referral, if its purpose is in the viewer's domains; otherwise it does not exist."""
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    rtype = catalogue.types.get(referral.type)
    visible = visible_purposes(session, person_id=referral.person_id, purposes=frozenset(purposes))
    if rtype is None or rtype.purpose not in visible:
        raise NotFound(f"no referral {referral_id} in your purpose domains")
    return referral


def _types_of(catalogue: Catalogue, purposes: set[str]) -> list[str]:
    return [tid for tid, rt in catalogue.types.items() if rt.purpose in purposes]
