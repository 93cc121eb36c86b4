"""Consent withdrawn after routing: the inbox and the reads no longer serve what rests on it.

The router and the inbox consumer run here as plain handlers over the outbox rows (what the
relay would publish), marking what they applied like the consumer runner does.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from consumers import inbox as inbox_consumer
from consumers import router
from consumers.runner import Context, Event
from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.events.service import mark_processed, processed_among
from hub.inbox.models import InboxMessage
from hub.kafka.cloudevents import from_headers
from hub.outbox.models import OutboxEvent
from hub.routing import service as routing
from tests.hubtest import Partners

PROBLEM = "https://talenthub.duisburg.de/problems/consent-withdrawn"
CONSENT = {
    "purpose": "counselling",
    "partners": ["jobcenter", "amt"],
    "granted_on": "2026-11-02",
    "evidence_reference": "Einwilligung ITC 2026/131",
    "notice_language": "ar",
}
COUNSELLING = {
    "type": "counselling.talent-center",
    "performer": "amt",
    "payload": {"topic": "Berufliche Orientierung", "preferred_language": "ar"},
}
SKILLED = {
    "type": "residence.skilled-worker",
    "performer": "amt",
    "payload": {"occupation": "Pflegefachkraft", "employer": "Klinikum Duisburg"},
}


def run_consumers(hub: Hub, *, stages: tuple[str, ...] = ("router", "inbox")) -> None:
    """Apply every outbox row not applied yet: events to the router, deliveries to the inbox."""
    handlers = {"router": router.handle, "inbox": inbox_consumer.handle}
    for stage in stages:
        with unit_of_work(hub.session_factory) as session:
            rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
            wanted = [
                r
                for r in rows
                if (r.topic == hub.settings.topic_events) == (stage == "router")
                and (stage == "router" or r.topic.startswith(hub.settings.topic_deliveries_prefix))
            ]
            ctx = Context(session, hub.settings, hub.catalogue, hub.policy)
            for row in wanted:
                attrs = from_headers([(k, v.encode()) for k, v in row.headers])
                event = Event(attrs, json.loads(row.value), row.topic, 0, row.id)
                # The marks the real consumers write: the inbox's per recipient.
                mark = inbox_consumer.mark_as(event) if stage == "inbox" else stage
                if processed_among(session, consumer=mark, ids=[row.event_id]):
                    continue
                handlers[stage](event, ctx)
                mark_processed(session, consumer=mark, event_id=row.event_id)


def release_all(hub: Hub, person_id: str) -> list[str | None]:
    """Release the person's holds as staff would (``hub holds release``)."""
    with unit_of_work(hub.session_factory) as session:
        return [
            routing.release(session, hold=h, policy=hub.policy, settings=hub.settings)
            for h in routing.pending_holds(session, person_id=person_id)
        ]


def setup_person(client: TestClient, jc: dict[str, str]) -> tuple[str, str]:
    """A person with an active counselling consent; (person id, consent id)."""
    person = {"family_name": "Haddad", "given_name": "Rania"}
    r = client.post("/v1/consents", json={**CONSENT, "person": person}, headers=jc)
    assert r.status_code == 201, r.text
    return r.json()["person_id"], r.json()["id"]


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any], pid: str) -> str:
    r = client.post("/v1/referrals", json={**body, "person": {"id": pid}}, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def inbox_referrals(client: TestClient, headers: dict[str, str]) -> list[str]:
    r = client.get("/v1/inbox", headers=headers)
    assert r.status_code == 200, r.text
    return [i["referral_id"] for i in r.json()["items"]]


def assert_withdrawn_problem(r: Any) -> None:
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc = r.json()
    assert doc["type"] == PROBLEM and doc["purpose"] == "counselling"
    assert date.fromisoformat(doc["withdrawn_at"][:10]) == date.today()
    assert date.today().isoformat() in doc["detail"] and "withdrew" in doc["detail"]


def test_withdrawal_takes_unacked_items_back_and_reads_answer_the_problem(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    counselling, skilled = create(client, jc, COUNSELLING, pid), create(client, jc, SKILLED, pid)
    run_consumers(hub)
    assert sorted(inbox_referrals(client, amt)) == sorted([counselling, skilled])
    assert client.get(f"/v1/referrals/{counselling}", headers=amt).json()["payload"]["topic"]

    withdrawn = client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc)
    assert withdrawn.status_code == 200, withdrawn.text

    # the inbox serves only what does not rest on the consent; the item's row is gone
    assert inbox_referrals(client, amt) == [skilled]
    with hub.session_factory() as s:
        [row] = s.scalars(select(InboxMessage).where(InboxMessage.partner_id == "amt")).all()
        assert row.referral_id == skilled
        audit = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "delivery.withdrawn")
        ).all()
    assert [a.details["referral_id"] for a in audit] == [counselling]
    assert audit[0].details["recipient"] == "amt" and audit[0].person_id == pid

    # reads answer why: the performer's referral read, its ack of the withdrawn item
    assert_withdrawn_problem(client.get(f"/v1/referrals/{counselling}", headers=amt))
    event_id = audit[0].details["event_id"]
    assert_withdrawn_problem(client.post(f"/v1/inbox/{event_id}/ack", headers=amt))
    listed = [r["id"] for r in client.get("/v1/referrals", headers=amt).json()["items"]]
    assert counselling not in listed and skilled in listed

    # a route on a statutory basis is untouched
    read = client.get(f"/v1/referrals/{skilled}", headers=amt)
    assert read.status_code == 200 and read.json()["payload"]["employer"] == "Klinikum Duisburg"
    # the requester still reads what it sent, and sees the delivery held with the reason
    mine = client.get(f"/v1/referrals/{counselling}", headers=jc)
    assert mine.status_code == 200, mine.text
    [hold] = mine.json()["holds"]
    assert hold["recipient"] == "amt" and "consent" in hold["reason"]


def test_acknowledged_items_stay_and_a_new_consent_brings_back_the_rest_once(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    taken, waiting = create(client, jc, COUNSELLING, pid), create(client, jc, COUNSELLING, pid)
    run_consumers(hub)
    items = {i["referral_id"]: i for i in client.get("/v1/inbox", headers=amt).json()["items"]}
    ack = client.post(f"/v1/inbox/{items[taken]['event_id']}/ack", headers=amt)
    assert ack.status_code == 204

    assert client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc).status_code == 200
    assert inbox_referrals(client, amt) == []
    with hub.session_factory() as s:
        kept = s.scalars(select(InboxMessage).where(InboxMessage.referral_id == taken)).one()
    assert kept.acked_at is not None and kept.data["payload"]  # the partner's own record

    [still] = release_all(hub, pid)  # no consent yet: the release refuses and says why
    assert still is not None and "no active consent for counselling" in still
    assert inbox_referrals(client, amt) == []

    again = client.post("/v1/consents", json={**CONSENT, "person": {"id": pid}}, headers=jc)
    assert again.status_code == 201
    assert release_all(hub, pid) == [None]
    assert release_all(hub, pid) == []  # released once
    run_consumers(hub)
    [item] = client.get("/v1/inbox", headers=amt).json()["items"]
    assert item["referral_id"] == waiting and item["event_id"] == items[waiting]["event_id"]
    assert item["data"]["person"]["family_name"] == "Haddad"
    assert client.get(f"/v1/referrals/{waiting}", headers=amt).status_code == 200


def test_the_inbox_consumer_holds_a_copy_routed_before_the_withdrawal(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    rid = create(client, jc, COUNSELLING, pid)
    run_consumers(hub, stages=("router",))  # routed while the consent stood
    assert client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc).status_code == 200
    run_consumers(hub, stages=("inbox",))
    assert inbox_referrals(client, amt) == []
    [hold] = client.get(f"/v1/referrals/{rid}", headers=jc).json()["holds"]
    assert hold["recipient"] == "amt"

    client.post("/v1/consents", json={**CONSENT, "person": {"id": pid}}, headers=jc)
    assert release_all(hub, pid) == [None]
    run_consumers(hub)
    assert inbox_referrals(client, amt) == [rid]
    assert client.get(f"/v1/referrals/{rid}", headers=jc).json()["holds"] == []


def test_an_erasure_reaches_both_parties_of_a_consent_based_referral(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    """The hub's cancellation of an erased person's referral goes out though the consent is
    gone: recipients must hear of an erasure (Art. 17(2), 19 GDPR)."""
    from hub.privacy.service import erase_person
    from schemas.lifecycle import PERSON_ERASED

    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    rid = create(client, jc, COUNSELLING, pid)
    run_consumers(hub)
    assert client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc).status_code == 200
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id=pid,
            reason="request-art-17",
            by="staff:dsb",
            topic=hub.settings.topic_events,
        )
    run_consumers(hub)
    for headers in (jc, amt):
        items = client.get("/v1/inbox", headers=headers).json()["items"]
        closing = [
            i["data"]
            for i in items
            if i["referral_id"] == rid and i["event_type"].endswith("status-changed.v1")
        ]
        assert [(c["status"], c["reason"]) for c in closing] == [("cancelled", PERSON_ERASED)], (
            items
        )
