"""Which events the router applies: the referral events and erasures that were not routed in
the transaction that made them. The router consumer skips every other event without a
database transaction, and settlement (hub.outbox.settlement) does not wait for the router's
mark on them."""

from __future__ import annotations

from collections.abc import Mapping

from schemas.cloudevents import EventType

#: The CloudEvents extension that marks an event routed in the transaction that made it.
ROUTED = "routed"
#: The event types the router sends on to partners.
ROUTED_TYPES = frozenset(
    {EventType.REFERRAL_REQUESTED, EventType.REFERRAL_STATUS_CHANGED, EventType.PERSON_ERASED}
)


def router_applies(event_type: str, extensions: Mapping[str, str]) -> bool:
    """True when the router has work on this event (and so marks it applied)."""
    return event_type in ROUTED_TYPES and extensions.get(ROUTED) != "1"
