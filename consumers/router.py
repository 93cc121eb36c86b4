"""Router: each canonical event goes to the delivery topic of the partners it concerns.

A new referral goes to its performer; a status change goes to the other party; an erasure
goes to every partner that took part in one of the person's referrals. Just before
routing, the route policy and (for consent-based routes) the person's consent are checked
again: a consent withdrawn since the referral was accepted holds the event back with its
reason, for staff to see and release. Each recipient gets only the fields its route allows,
and of a status change only the codes and notes the route shares with that side.
The routed copy keeps the event id, so every later hop deduplicates on it.

A partner's request or status change is routed in the transaction that accepts it
(``hub.routing.service.at_acceptance``) and marked so; the router passes such events by. It
routes what the hub makes itself (closings, erasures) and any event staged unmarked.
"""

from __future__ import annotations

from consumers.runner import Context, Event
from hub.routing import erasure
from hub.routing import service as routing
from hub.routing.applies import router_applies
from schemas.cloudevents import EventType


def wants(event: Event) -> bool:
    """The router's work: referral events and erasures not routed at acceptance. The runner
    passes every other event by without a transaction (and marks none of them)."""
    return router_applies(event.attrs.type, event.attrs.extensions)


def recipients(event: Event) -> list[str]:
    """The partners that must receive this event."""
    if event.attrs.type == EventType.PERSON_ERASED:
        return erasure.recipients(event.data)
    return routing.recipients(event.attrs.type, event.data)


def handle(event: Event, ctx: Context) -> None:
    """Stage one minimised copy per recipient in the outbox, or hold it with the reason."""
    if not wants(event):
        return
    if event.attrs.type == EventType.PERSON_ERASED:
        for partner_id in recipients(event):
            erasure.send(
                ctx.session,
                settings=ctx.settings,
                attrs=event.attrs,
                data=event.data,
                recipient=partner_id,
            )
        return
    for partner_id in recipients(event):
        route, reason = routing.blocked_reason(ctx.session, ctx.policy, event.data)
        if reason is not None or route is None:
            routing.hold(
                ctx.session,
                attrs=event.attrs,
                data=event.data,
                recipient=partner_id,
                reason=reason or "no route",
            )
            continue
        routing.send(
            ctx.session,
            settings=ctx.settings,
            attrs=event.attrs,
            data=event.data,
            recipient=partner_id,
            route=route,
        )
