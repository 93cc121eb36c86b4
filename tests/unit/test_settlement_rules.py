"""Which consumers must apply an event before its outbox row is settled: the router only for
the events it routes itself, so an event routed at acceptance settles without it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hub.kafka.cloudevents import to_headers
from hub.outbox.settlement import is_settled, required
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes, EventType

SETTINGS = Settings()
EVENTS = SETTINGS.topic_events


def headers(event_type: str, **extensions: str) -> list[list[str]]:
    attrs = CloudEventAttributes(
        id=str(uuid.uuid4()),
        source="/partners/ude",
        type=event_type,
        time=datetime.now(UTC),
        extensions=extensions,
    )
    return [[name, value.decode()] for name, value in to_headers(attrs)]


def test_an_event_routed_at_acceptance_needs_no_router() -> None:
    needs = required(SETTINGS, EVENTS, headers(EventType.REFERRAL_REQUESTED, routed="1"))
    assert is_settled(needs, {"timeline", "deadlines"})
    assert not is_settled(needs, {"router", "timeline"})


def test_an_event_the_router_routes_needs_it() -> None:
    for event_type in (EventType.REFERRAL_STATUS_CHANGED, EventType.PERSON_ERASED):
        needs = required(SETTINGS, EVENTS, headers(event_type))
        assert not is_settled(needs, {"timeline", "deadlines"})
        assert is_settled(needs, {"router", "timeline", "deadlines"})


def test_an_event_the_router_never_routes_needs_no_router() -> None:
    needs = required(SETTINGS, EVENTS, headers(EventType.REFERRAL_DELIVERED))
    assert is_settled(needs, {"timeline", "deadlines"})


def test_a_copy_needs_its_partners_inbox_or_push_delivery() -> None:
    topic = SETTINGS.deliveries_topic("amt")
    needs = required(SETTINGS, topic, headers(EventType.REFERRAL_REQUESTED, recipient="amt"))
    assert is_settled(needs, {"inbox.amt"}) and is_settled(needs, {"delivery.amt"})
    assert not is_settled(needs, {"inbox.ude"})
