"""Resolving routes where only partner ids are at hand (events, stored referrals).

Rules name partner kinds, so resolving needs each partner's kind. A partner's kind never
changes once registered (no service changes it), so this process keeps every kind it has read,
per database, and reads again only on a miss: a partner added since (``hub partners add``, in
another process) is found on its first flow, and the steady state costs no query.
"""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from hub.partners.models import Partner
from hub.policy.model import Party, Policy, Route, StatusShare

_KINDS: WeakKeyDictionary[Engine, dict[str, str]] = WeakKeyDictionary()
_LOCK = threading.Lock()


def party(session: Session, partner_id: str) -> Party:
    """The partner with its kind (None when it is not registered)."""
    known = _known(session)
    kind = known.get(partner_id)
    if kind is None:
        with session.no_autoflush:
            kind = session.scalar(select(Partner.kind).where(Partner.id == partner_id))
        if kind is not None:
            known[partner_id] = kind
    return Party(partner_id, kind)


def route_between(
    session: Session, policy: Policy, *, requester: str, performer: str, type_: str
) -> Route | None:
    """The route for a flow between two partners named by id."""
    return policy.route(party(session, requester), party(session, performer), type_)


def share_between(
    session: Session,
    policy: Policy,
    *,
    requester: str,
    performer: str,
    type_: str,
    viewer: str,
) -> StatusShare:
    """What ``viewer`` may see of the other side's status changes in that flow."""
    return policy.status_share(party(session, requester), party(session, performer), type_, viewer)


def _known(session: Session) -> dict[str, str]:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _LOCK:
        return _KINDS.setdefault(engine, {})
