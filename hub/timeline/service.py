"""The person timeline: projecting events into entries and reading them back."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.consent.service import shared_by_consent
from hub.deliveries.service import outcome_event_id
from hub.errors import NotFound
from hub.policy.model import Policy
from hub.policy.parties import share_between
from hub.referrals.models import Referral
from hub.timeline.models import TimelineEntry
from schemas.cloudevents import CloudEventAttributes, EventType
from schemas.messages import EventData


def project(
    session: Session,
    *,
    attrs: CloudEventAttributes,
    data: EventData,
    referral_type: str | None,
    status: str | None,
    business_status: str | None,
) -> None:
    """Add the timeline entry for one event (the consumer's dedup makes it happen once)."""
    session.add(
        TimelineEntry(
            event_id=attrs.id,
            person_id=data.person_id,
            referral_id=str(data.referral_id) if data.referral_id else None,
            referral_type=referral_type,
            source_partner=data.acting_partner,
            event_type=attrs.type,
            status=status,
            business_status=business_status,
            purpose=data.purpose,
            legal_basis=data.legal_basis,
            occurred_at=data.occurred_at,
            recorded_at=data.recorded_at,
        )
    )


def timeline_for_partner(
    session: Session, *, person_id: str, viewer: str, policy: Policy
) -> list[PartnerEntry]:
    """The person's entries of the referrals ``viewer`` takes part in, oldest first.

    A business status code set by the other side shows only where the route shares it with
    ``viewer``, as in what the router sends (hub/policy/projection.py)."""
    referrals = {
        r.id: r
        for r in session.execute(
            select(Referral.id, Referral.requester_id, Referral.performer_id, Referral.type).where(
                Referral.person_id == person_id,
                or_(Referral.requester_id == viewer, Referral.performer_id == viewer),
            )
        )
    }
    if not referrals:
        raise NotFound(f"no person {person_id} in your referrals")
    stmt = (
        select(TimelineEntry)
        .where(TimelineEntry.person_id == person_id, TimelineEntry.referral_id.in_(referrals))
        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
    )
    entries = []
    for entry in session.scalars(stmt):
        code = entry.business_status
        referral = referrals[entry.referral_id or ""]
        if code is not None and entry.source_partner != viewer:
            share = share_between(
                session,
                policy,
                requester=referral.requester_id,
                performer=referral.performer_id,
                type_=referral.type,
                viewer=viewer,
            )
            if code not in share.business_statuses:
                code = None
        entries.append(PartnerEntry(entry, code))
    return entries


@dataclass(frozen=True)
class PartnerEntry:
    """A timeline entry as a partner may read it: the business status code it may see."""

    entry: TimelineEntry
    business_status: str | None


def timeline_for_staff(
    session: Session,
    *,
    person_id: str,
    purposes: frozenset[str],
    partner: str | None = None,
    event_type: str | None = None,
    purpose: str | None = None,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[TimelineEntry]:
    """The person's entries in the viewer's purpose domains, oldest first unless asked.

    Enforced here, not in templates: a residence-law caseworker never receives counselling
    entries (voluntary counselling must not feed enforcement) unless the person's active
    consent for counselling shares it with residence-law staff. Entries without a purpose
    (e.g. an erasure notice) are shown to everyone who may see the person.
    """
    visible = set(purposes) | shared_by_consent(session, person_id=person_id, viewer=purposes)
    if purpose is not None:
        visible &= {purpose}
    stmt = select(TimelineEntry).where(
        TimelineEntry.person_id == person_id,
        or_(TimelineEntry.purpose.in_(sorted(visible)), TimelineEntry.purpose.is_(None))
        if purpose is None
        else TimelineEntry.purpose.in_(sorted(visible)),
    )
    if partner is not None:
        stmt = stmt.where(TimelineEntry.source_partner == partner)
    if event_type is not None:
        stmt = stmt.where(TimelineEntry.event_type == event_type)
    order = (
        (TimelineEntry.occurred_at.desc(), TimelineEntry.id.desc())
        if newest_first
        else (TimelineEntry.occurred_at, TimelineEntry.id)
    )
    stmt = stmt.order_by(*order)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def visible_purposes(session: Session, *, person_id: str, purposes: frozenset[str]) -> set[str]:
    """The purpose domains of the person's entries a viewer with ``purposes`` may see."""
    return set(purposes) | shared_by_consent(session, person_id=person_id, viewer=purposes)


#: Outcome event types of a push delivery, and the word their event ids are derived from.
DELIVERY_OUTCOMES = {
    EventType.REFERRAL_DELIVERED: "delivered",
    EventType.REFERRAL_DELIVERY_FAILED: "failed",
}
#: Replays of one dead letter whose outcome is still folded; a later one stays its own line.
_REPLAYS = 4


@dataclass
class FoldedEntry:
    """An entry with the outcomes of delivering it to partners, oldest first."""

    entry: TimelineEntry
    deliveries: list[TimelineEntry] = field(default_factory=list)


def fold_deliveries(entries: list[TimelineEntry]) -> list[FoldedEntry]:
    """``entries`` with each delivery outcome folded into the event it delivered.

    An outcome's event id is derived from the delivered event's id and the recipient
    (hub.deliveries), so the link is exact; an outcome whose event is not among ``entries``
    (filtered out, or beyond the page) stays an entry of its own."""
    recipients: dict[str | None, set[tuple[str, str]]] = defaultdict(set)
    for e in entries:
        if e.event_type in DELIVERY_OUTCOMES:
            recipients[e.referral_id].add((DELIVERY_OUTCOMES[e.event_type], e.source_partner))
    folded = [FoldedEntry(e) for e in entries if e.event_type not in DELIVERY_OUTCOMES]
    by_outcome_id = {
        str(outcome_event_id(what, partner_id=partner, event_id=f.entry.event_id, replay=str(n))): f
        for f in folded
        for what, partner in recipients.get(f.entry.referral_id, ())
        for n in range(_REPLAYS)
    }
    events = iter(folded)
    lines: list[FoldedEntry] = []
    for e in entries:
        if e.event_type not in DELIVERY_OUTCOMES:
            lines.append(next(events))
        elif (into := by_outcome_id.get(e.event_id)) is not None:
            into.deliveries.append(e)
        else:
            lines.append(FoldedEntry(e))
    for f in lines:
        f.deliveries.sort(key=lambda d: (d.occurred_at, d.id))
    return lines
