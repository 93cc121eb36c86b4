"""Every partner read that returns personal data leaves an audit record naming the person and
the referrals it returned, and the person's Art. 15 report lists those reads.

The router, the inbox and the timeline consumer run here as plain handlers over the outbox
rows, as in tests/api/test_consent_withdrawal.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from consumers import inbox as inbox_consumer
from consumers import router, timeline
from consumers.runner import Context, Event
from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.kafka.cloudevents import from_headers
from hub.outbox.models import OutboxEvent
from hub.privacy.export import export_person
from hub.privacy.report import render_html
from tests.hubtest import STUDENT_REFERRAL, Partners

READ = "api.read"


def apply_outbox(hub: Hub) -> None:
    """Route every staged event, project it on the timeline, file deliveries in the inboxes."""
    events, deliveries = hub.settings.topic_events, hub.settings.topic_deliveries_prefix
    _apply(hub, router.handle, lambda topic: topic == events)
    _apply(hub, timeline.handle, lambda topic: topic == events)
    _apply(hub, inbox_consumer.handle, lambda topic: topic.startswith(deliveries))


def _apply(
    hub: Hub, handle: Callable[[Event, Context], None], wanted: Callable[[str], bool]
) -> None:
    with unit_of_work(hub.session_factory) as session:
        ctx = Context(session, hub.settings, hub.catalogue, hub.policy)
        for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all():
            if wanted(row.topic):
                attrs = from_headers([(k, v.encode()) for k, v in row.headers])
                handle(Event(attrs, json.loads(row.value), row.topic, 0, row.id), ctx)


def reads(hub: Hub, partner: str | None = None) -> list[AuditRecord]:
    with hub.session_factory() as session:
        stmt = select(AuditRecord).where(AuditRecord.action == READ).order_by(AuditRecord.seq)
        if partner is not None:
            stmt = stmt.where(AuditRecord.actor == partner)
        return list(session.scalars(stmt))


def test_partner_reads_name_the_person_and_referral_and_reach_the_export(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    created = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert created.status_code == 202, created.text
    rid, pid = created.json()["id"], created.json()["person_id"]
    assert reads(hub) == []  # creating is no read
    apply_outbox(hub)

    assert client.get(f"/v1/referrals/{rid}", headers=amt).status_code == 200
    [item] = client.get("/v1/inbox", headers=amt).json()["items"]
    assert item["referral_id"] == rid
    timeline_read = client.get(f"/v1/people/{pid}/timeline", headers=amt)
    assert timeline_read.status_code == 200 and timeline_read.json()["entries"]
    assert [r["id"] for r in client.get("/v1/referrals", headers=ude).json()["items"]] == [rid]

    by_amt = reads(hub, "amt")
    assert [(r.person_id, r.details["route"], r.details["referrals"]) for r in by_amt] == [
        (pid, "/v1/referrals/{referral_id}", [rid]),
        (pid, "/v1/inbox", [rid]),
        (pid, "/v1/people/{person_id}/timeline", [rid]),
    ]
    assert all(r.actor_type == "partner" and r.details["method"] == "GET" for r in by_amt)
    assert [(r.person_id, r.details["referrals"]) for r in reads(hub, "ude")] == [(pid, [rid])]

    with unit_of_work(hub.session_factory) as session:
        report = export_person(session, person_id=pid, by="staff:dsb", policy=hub.policy)
    seen = [(z["partner"]["id"], z["read"], z["referrals"]) for z in report["partner_reads"]]
    assert seen == [
        ("amt", "referral", [rid]),
        ("amt", "inbox", [rid]),
        ("amt", "timeline", [rid]),
        ("ude", "referrals", [rid]),
    ]
    assert all(z["at"] for z in report["partner_reads"])
    assert {"person", "referrals", "consents", "deliveries"} <= set(report)
    page = render_html(report, "de")
    assert "Abrufe durch Partner" in page
    assert all(label in page for label in ("Posteingang", "Zeitleiste", "Liste der Vermittlungen"))


def test_a_read_that_returns_no_person_records_none(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    hwk = partners.headers(client, "hwk")

    inbox = client.get("/v1/inbox", headers=hwk)
    listing = client.get("/v1/referrals", headers=hwk)

    assert inbox.status_code == 200 and inbox.json()["items"] == []
    assert listing.status_code == 200 and listing.json()["items"] == []
    assert reads(hub) == []
    with hub.session_factory() as session:
        calls = session.scalars(
            select(AuditRecord).where(AuditRecord.actor == "hwk", AuditRecord.action == "api.call")
        ).all()
    assert len(calls) == 2 and all(c.person_id is None for c in calls)


def test_consent_reads_name_the_person(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    consent = {
        "purpose": "counselling",
        "partners": ["jobcenter", "amt"],
        "granted_on": "2026-11-02",
        "evidence_reference": "Einwilligung ITC 2026/131",
        "notice_language": "ar",
        "person": {"family_name": "Haddad", "given_name": "Rania"},
    }
    r = client.post("/v1/consents", json=consent, headers=jc)
    assert r.status_code == 201, r.text
    pid = r.json()["person_id"]

    assert len(client.get(f"/v1/people/{pid}/consents", headers=amt).json()) == 1

    [read] = reads(hub)
    assert (read.actor, read.person_id, read.details["referrals"]) == ("amt", pid, [])
    assert read.details["route"] == "/v1/people/{person_id}/consents"
