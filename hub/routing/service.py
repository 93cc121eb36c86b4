"""Routing one event to one recipient: policy and consent checked again, then the
recipient's minimised copy staged in the outbox, or the event held with its reason."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.consent.service import covering
from hub.db import utcnow
from hub.kafka.cloudevents import from_headers, to_headers
from hub.outbox.service import add_json
from hub.policy.model import Policy, Route
from hub.policy.projection import project
from hub.routing.models import RoutingHold
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes


def blocked_reason(
    session: Session, policy: Policy, data: dict[str, Any]
) -> tuple[Route | None, str | None]:
    """The route of a referral event, and why it may not flow now (None when it may)."""
    route = policy.route(
        str(data.get("requester")), str(data.get("performer")), str(data.get("referral_type"))
    )
    if route is None:
        return None, "route is no longer in the route policy"
    if (
        route.needs_consent
        and covering(
            session,
            person_id=str(data.get("person_id")),
            purpose=route.purpose,
            partners={route.requester, route.performer},
        )
        is None
    ):
        return (
            route,
            f"no active consent for {route.purpose} between {route.requester} and "
            f"{route.performer} (withdrawn or never given)",
        )
    return route, None


def send(
    session: Session,
    *,
    settings: Settings,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
    route: Route,
) -> None:
    """Stage the recipient's minimised copy of the event."""
    routed = attrs.model_copy(update={"extensions": {**attrs.extensions, "recipient": recipient}})
    add_json(
        session,
        topic=settings.deliveries_topic(recipient),
        attrs=routed,
        data=project(attrs.type, data, route),
    )


def hold(
    session: Session,
    *,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
    reason: str,
) -> None:
    """Keep the event back, with the reason staff will see; never drop it silently."""
    session.add(
        RoutingHold(
            event_id=attrs.id,
            event_type=attrs.type,
            recipient=recipient,
            referral_id=attrs.subject,
            person_id=str(data.get("person_id")),
            reason=reason,
            headers=[[k, v.decode()] for k, v in to_headers(attrs)],
            data=data,
        )
    )


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
    send(
        session,
        settings=settings,
        attrs=attrs,
        data=hold.data,
        recipient=hold.recipient,
        route=route,
    )
    hold.released_at = utcnow()
    return None
