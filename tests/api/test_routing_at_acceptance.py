"""A partner's request or status change is routed in the transaction that accepts it: the
recipient's minimised copy is staged with the event (one relay cycle and one consumer hop
fewer), the event is marked so that the router passes it by, and a copy that may not flow
is held there and then, as the router would hold it."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from consumers import router
from consumers.runner import Context, Event
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.kafka.cloudevents import from_headers
from hub.outbox.models import OutboxEvent
from hub.policy.model import Party
from hub.routing.models import RoutingHold
from hub.routing.service import routed_at_acceptance
from tests.api.test_consent_withdrawal import COUNSELLING, create, setup_person
from tests.hubtest import STUDENT_REFERRAL, Partners


def staged(hub: Hub) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """Every outbox row as (topic, data, CloudEvents extensions), in outbox order."""
    with hub.session_factory() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        return [
            (
                r.topic,
                json.loads(r.value),
                from_headers([(k, v.encode()) for k, v in r.headers]).extensions,
            )
            for r in rows
        ]


def test_a_new_referral_carries_its_performers_copy(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=partners.headers(client, "ude"))
    assert r.status_code == 202, r.text
    [(events, event, marks), (topic, copy, copy_marks)] = staged(hub)
    assert events == hub.settings.topic_events and marks.get("routed") == "1"
    assert topic == hub.settings.deliveries_topic("amt") and copy_marks["recipient"] == "amt"
    assert "routed" not in copy_marks
    assert copy["event_id"] == event["event_id"] and copy["referral_id"] == r.json()["id"]
    # Minimised as the router would: the route's fields only (no staff-only field travels).
    route = hub.policy.route(
        Party("ude", "university"), Party("amt", "authority"), "residence.student"
    )
    assert route is not None
    allowed = {f.split(".", 1)[1] for f in route.fields if f.startswith("payload.")}
    assert set(copy["payload"]) <= allowed and set(event["payload"]) >= set(copy["payload"])


def test_the_router_passes_a_routed_event_by(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=partners.headers(client, "ude"))
    assert r.status_code == 202, r.text
    before = staged(hub)
    with unit_of_work(hub.session_factory) as session:
        row = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == hub.settings.topic_events)
        ).one()
        attrs = from_headers([(k, v.encode()) for k, v in row.headers])
        assert routed_at_acceptance(attrs)
        ctx = Context(session, hub.settings, hub.catalogue, hub.policy)
        router.handle(Event(attrs, json.loads(row.value), row.topic, 0, row.id), ctx)
    assert staged(hub) == before  # no second copy


def test_a_status_change_whose_consent_is_gone_is_held_at_acceptance(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    rid = create(client, jc, COUNSELLING, pid)
    assert client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc).status_code == 200
    changed = client.post(f"/v1/referrals/{rid}/status", json={"status": "received"}, headers=amt)
    assert changed.status_code == 200, changed.text
    to_jobcenter = [
        data
        for topic, data, _ in staged(hub)
        if topic == hub.settings.deliveries_topic("jobcenter") and data.get("status") == "received"
    ]
    assert to_jobcenter == []
    with hub.session_factory() as session:
        holds = session.scalars(select(RoutingHold).where(RoutingHold.referral_id == rid)).all()
    assert [(h.recipient, "consent" in h.reason) for h in holds] == [("jobcenter", True)]
