"""Routing one event to one recipient: policy and consent checked again, then the
recipient's minimised copy staged in the outbox, or the event held with its reason.

The consent check here is the one every later stage repeats before it makes a routed copy
available (the pull inbox, push delivery, the partner API's reads): a copy routed before
the consent was withdrawn is held there exactly like the router holds an event, and a
release sends it on once consent is given again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.consent.service import covering, last_withdrawn
from hub.db import utcnow
from hub.errors import ConsentWithdrawn
from hub.events.service import already_processed
from hub.inbox.service import consumer_name as inbox_consumer_name
from hub.inbox.service import put as put_in_inbox
from hub.kafka.cloudevents import from_headers, to_headers
from hub.outbox.models import OutboxEvent
from hub.outbox.service import OutboxRow, add_row, json_row, visible
from hub.policy.model import Policy, Route
from hub.policy.parties import route_between
from hub.policy.projection import project
from hub.routing.applies import ROUTED
from hub.routing.models import RoutingHold
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes, EventType
from schemas.lifecycle import HUB_REASONS


def blocked_reason(
    session: Session, policy: Policy, data: dict[str, Any]
) -> tuple[Route | None, str | None]:
    """The route of a referral event, and why it may not flow now (None when it may)."""
    route = _route_of(session, policy, data)
    if route is None:
        return None, "route is no longer in the route policy"
    return route, consent_reason(session, route, str(data.get("person_id")), data)


def consent_reason(
    session: Session, route: Route, person_id: str, data: dict[str, Any] | None = None
) -> str | None:
    """Why a consent-based route may not carry this person's data now (None when it may)."""
    if data is not None and tells_of_erasure(data):
        return None
    if (
        route.needs_consent
        and covering(
            session,
            person_id=person_id,
            purpose=route.purpose,
            partners={route.requester, route.performer},
        )
        is None
    ):
        return (
            f"no active consent for {route.purpose} between {route.requester} and "
            f"{route.performer} (withdrawn or never given)"
        )
    return None


def withheld_reason(session: Session, policy: Policy, data: dict[str, Any]) -> str | None:
    """Why a copy routed earlier may not be made available now for lack of consent.

    Only consent counts here: a route dropped from the policy since does not take back what
    was routed while it stood (that is for staff to decide); a withdrawn consent does.
    """
    route = _route_of(session, policy, data)
    if route is None:
        return None
    return consent_reason(session, route, str(data.get("person_id")), data)


def needs_consent(policy: Policy, data: dict[str, Any]) -> bool:
    """True when the event may belong to a route whose legal basis is consent (no query).

    Partner kinds are not at hand here, so any consent rule of the type that could match
    counts; ``withheld`` resolves the route itself before it holds anything."""
    flow = (str(data.get("requester")), str(data.get("performer")))
    may = policy.may_need_consent(*flow, str(data.get("referral_type")))
    return may and not tells_of_erasure(data)


def tells_of_erasure(data: dict[str, Any]) -> bool:
    """True for the hub's own cancellation of a referral nobody will work on any more.

    It reaches both parties whatever the consent: a recipient must hear of an erasure
    (Art. 17(2), 19 GDPR) and must not keep working on a case the hub closed; it carries
    the status and its reason, no personal data beyond the referral's pseudonymous ids."""
    return data.get("acting_partner") == "hub" and data.get("reason") in HUB_REASONS


def withheld(
    session: Session, policy: Policy, *, event_id: str, recipient: str, data: dict[str, Any]
) -> str | None:
    """Why a routed copy may not reach ``recipient`` now (None when it may): its consent is
    gone, or the event is held for that recipient already (only a release sends it on)."""
    if not needs_consent(policy, data):
        return None
    earlier = held(session, event_id=event_id, recipient=recipient)
    if earlier is not None:
        return earlier.reason
    return withheld_reason(session, policy, data)


def require_consent(session: Session, policy: Policy, data: dict[str, Any]) -> None:
    """Raise ``ConsentWithdrawn``, with the date, when consent no longer covers this data."""
    route = _route_of(session, policy, data)
    person_id = str(data.get("person_id"))
    if route is None or consent_reason(session, route, person_id) is None:
        return
    partners = {route.requester, route.performer}
    consent = last_withdrawn(session, person_id=person_id, purpose=route.purpose, partners=partners)
    if consent is None or consent.withdrawn_at is None:
        raise ConsentWithdrawn(
            f"{route.name} rests on the person's consent for {route.purpose}; none is active",
            purpose=route.purpose,
        )
    raise ConsentWithdrawn(
        f"the person withdrew their consent for {route.purpose} on "
        f"{consent.withdrawn_at.date().isoformat()}; what flowed on it is no longer served",
        purpose=route.purpose,
        consent_id=consent.id,
        withdrawn_at=consent.withdrawn_at.isoformat(),
    )


def _route_of(session: Session, policy: Policy, data: dict[str, Any]) -> Route | None:
    return route_between(
        session,
        policy,
        requester=str(data.get("requester")),
        performer=str(data.get("performer")),
        type_=str(data.get("referral_type")),
    )


def send(
    session: Session,
    *,
    settings: Settings,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
    route: Route,
    replay: int = 0,
) -> None:
    """Stage the recipient's minimised copy of the event (``replay`` > 0: once more)."""
    row = copy_row(settings=settings, attrs=attrs, data=data, recipient=recipient, route=route)
    row.replay = replay
    add_row(session, row)


def copy_row(
    *,
    settings: Settings,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
    route: Route,
) -> OutboxRow:
    """The outbox row of the recipient's minimised copy, on its delivery topic (not staged)."""
    routed = attrs.model_copy(update={"extensions": {**attrs.extensions, "recipient": recipient}})
    copy = project(attrs.type, data, route, recipient=recipient)
    return json_row(topic=settings.deliveries_topic(recipient), attrs=routed, data=copy)


def recipients(event_type: str, data: dict[str, Any]) -> list[str]:
    """The partners that must receive a referral event: a new referral goes to its
    performer, a status change to the other party (both, when the hub made it)."""
    if event_type == EventType.REFERRAL_REQUESTED:
        return [str(data.get("performer"))]
    if event_type == EventType.REFERRAL_STATUS_CHANGED:
        parties = {str(data.get("requester")), str(data.get("performer"))}
        return sorted(parties - {str(data.get("acting_partner"))})
    return []


def at_acceptance(
    session: Session,
    *,
    settings: Settings,
    policy: Policy,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    route: Route | None = None,
) -> list[OutboxRow]:
    """Route a referral event in the transaction that makes it (design §8).

    Returns the event's own row, marked ``ROUTED`` so that the router leaves it alone, and
    each recipient's minimised copy, for the caller to stage together (``add_rows``): a
    delivery then takes one relay cycle and one consumer hop, not two of each. Policy and
    consent are checked here exactly as the router checks them, and a copy that may not
    flow is held as the router holds it; the inbox and push delivery check consent again
    just before they make the copy available. ``route``: already resolved and checked by
    the caller (a new referral's route and consent are checked before it is accepted).
    """
    marked = attrs.model_copy(update={"extensions": {**attrs.extensions, ROUTED: "1"}})
    rows = [json_row(topic=settings.topic_events, attrs=marked, data=data)]
    for recipient in recipients(attrs.type, data):
        found, reason = (
            (route, None) if route is not None else blocked_reason(session, policy, data)
        )
        if reason is not None or found is None:
            hold(session, attrs=attrs, data=data, recipient=recipient, reason=reason or "no route")
            continue
        rows.append(
            copy_row(settings=settings, attrs=attrs, data=data, recipient=recipient, route=found)
        )
    return rows


def routed_at_acceptance(attrs: CloudEventAttributes) -> bool:
    """True for an event whose copies were staged with it (``at_acceptance``)."""
    return attrs.extensions.get(ROUTED) == "1"


def hold(
    session: Session,
    *,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
    reason: str,
) -> None:
    """Keep the event back, with the reason staff will see; never drop it silently.

    One hold per event and recipient: an event released and caught again on its way (the
    consent withdrawn once more) is held again in the same row.
    """
    headers = [[k, v.decode()] for k, v in to_headers(attrs)]
    stmt = select(RoutingHold).where(
        RoutingHold.event_id == attrs.id, RoutingHold.recipient == recipient
    )
    earlier = session.scalars(stmt).first()
    if earlier is not None:
        earlier.reason, earlier.headers, earlier.data = reason, headers, data
        earlier.held_at, earlier.released_at = utcnow(), None
        return
    session.add(
        RoutingHold(
            event_id=attrs.id,
            event_type=attrs.type,
            recipient=recipient,
            referral_id=attrs.subject,
            person_id=str(data.get("person_id")),
            reason=reason,
            headers=headers,
            data=data,
        )
    )


def held(session: Session, *, event_id: str, recipient: str) -> RoutingHold | None:
    """The unreleased hold of this event for this recipient, if there is one."""
    stmt = select(RoutingHold).where(
        RoutingHold.event_id == event_id,
        RoutingHold.recipient == recipient,
        RoutingHold.released_at.is_(None),
    )
    return session.scalars(stmt).first()


def holds_for_referral(session: Session, referral_id: str) -> list[RoutingHold]:
    """Unreleased holds of one referral."""
    stmt = select(RoutingHold).where(
        RoutingHold.referral_id == referral_id, RoutingHold.released_at.is_(None)
    )
    return list(session.scalars(stmt.order_by(RoutingHold.id)))


def pending_holds(session: Session, *, person_id: str | None = None) -> list[RoutingHold]:
    """Every unreleased hold, optionally of one person."""
    stmt = select(RoutingHold).where(RoutingHold.released_at.is_(None))
    if person_id:
        stmt = stmt.where(RoutingHold.person_id == person_id)
    return list(session.scalars(stmt.order_by(RoutingHold.id)))


def release(
    session: Session, *, hold: RoutingHold, policy: Policy, settings: Settings
) -> str | None:
    """Route a held event now if policy and consent allow it; otherwise say why not."""
    if hold.released_at is not None:
        return "already released"
    route, reason = blocked_reason(session, policy, hold.data)
    if reason is not None or route is None:
        hold.reason = reason or "no route"
        return hold.reason
    attrs = from_headers([(k, v.encode()) for k, v in hold.headers])
    marked = inbox_consumer_name(hold.recipient)
    if already_processed(session, consumer=marked, event_id=hold.event_id):
        # Held by (or taken back from) the pull inbox: the inbox consumer would drop a copy
        # sent again as a repeat, so the release puts it back into the inbox itself.
        put_in_inbox(
            session,
            partner_id=hold.recipient,
            event_id=hold.event_id,
            event_type=hold.event_type,
            referral_id=hold.referral_id,
            data=project(attrs.type, hold.data, route, recipient=hold.recipient),
        )
    else:
        send(
            session,
            settings=settings,
            attrs=attrs,
            data=hold.data,
            recipient=hold.recipient,
            route=route,
            replay=_next_replay(session, settings.deliveries_topic(hold.recipient), attrs.id),
        )
    hold.released_at = utcnow()
    return None


def _next_replay(session: Session, topic: str, event_id: str) -> int:
    """0 for a copy never staged; one more than the last for a copy held after routing."""
    visible(session)
    last = session.scalar(
        select(func.max(OutboxEvent.replay)).where(
            OutboxEvent.topic == topic, OutboxEvent.event_id == event_id
        )
    )
    return 0 if last is None else int(last) + 1
