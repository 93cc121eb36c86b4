"""The whole exchange through the real broker: token, referral, routing, inbox, status, timeline."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from hub.db import unit_of_work
from hub.privacy.export import export_person
from hub.privacy.report import render_html
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for

pytestmark = pytest.mark.integration


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[Any]:
    """Every record of a topic, read by a plain kafka-python consumer without a group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # Read on briefly: a duplicate would arrive after the expected count.
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def test_referral_exchange_end_to_end(running: Running) -> None:
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    p = running.partners
    with api_client(running.hub) as client:
        ude, amt = p.headers(client, "ude"), p.headers(client, "amt")
        created = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
        rid, person = created["id"], created["person_id"]

        def amt_inbox() -> list[dict[str, Any]]:
            """amt's inbox holds the referral"""
            items = client.get("/v1/inbox", headers=amt).json()["items"]
            return [i for i in items if i["referral_id"] == rid]

        [item] = wait_for(amt_inbox)
        assert item["event_type"] == "de.duisburg.talenthub.referral.requested.v1"
        assert item["data"]["person"]["family_name"] == "Li"
        assert "partner_reference" not in json.dumps(item["data"])  # UDE's Matrikelnummer stays
        assert "ES012345601" not in json.dumps(item["data"])
        assert client.post(f"/v1/inbox/{item['event_id']}/ack", headers=amt).status_code == 204
        assert amt_inbox() == []

        for step in (
            {"status": "accepted"},
            {"status": "in-progress"},
            {"status": "completed", "business_status": "PERMIT_GRANTED", "outcome": "granted"},
        ):
            r = client.post(f"/v1/referrals/{rid}/status", json=step, headers=amt)
            assert r.status_code == 200, r.text

        final = client.get(f"/v1/referrals/{rid}", headers=ude).json()
        # The route shares no permit decision with the university: the status only.
        assert (final["status"], final["business_status"]) == ("completed", None)
        final = client.get(f"/v1/referrals/{rid}", headers=amt).json()
        assert (final["status"], final["business_status"]) == ("completed", "PERMIT_GRANTED")

        def ude_updates() -> list[str]:
            """ude's inbox holds the three status changes"""
            items = client.get("/v1/inbox", headers=ude).json()["items"]
            statuses = [i["data"]["status"] for i in items if i["referral_id"] == rid]
            return statuses if len(statuses) == 3 else []

        assert wait_for(ude_updates) == ["accepted", "in-progress", "completed"]

        def timeline() -> list[tuple[str, str]]:
            """the timeline shows all four steps"""
            entries = client.get(f"/v1/people/{person}/timeline", headers=ude).json()["entries"]
            return (
                [(e["status"], e["source_partner"]) for e in entries] if len(entries) == 4 else []
            )

        assert wait_for(timeline) == [
            ("requested", "ude"),
            ("accepted", "amt"),
            ("in-progress", "amt"),
            ("completed", "amt"),
        ]

    delivered = read_topic(running.hub.bootstrap_servers, "hub.deliveries.amt.v1", expect=1)
    assert [r.value for r in delivered if json.loads(r.value)["referral_id"] == rid]

    # Art. 15: every transfer about the person, with recipient, time and legal basis.
    with unit_of_work(running.hub.session_factory) as session:
        report = export_person(session, person_id=person, by="cli:test", policy=running.hub.policy)
    transfers = [
        (t["recipient"]["id"], t["legal_basis"], t["message"]) for t in report["deliveries"]
    ]
    # The referral carries its route's basis, its status changes the referral type's.
    sent = (
        "Antrag der Person (§ 81 Abs. 1 AufenthG), von der Hochschule in ihrem Auftrag "
        "weitergeleitet"
    )
    told = running.hub.catalogue.types["residence.student"].legal_basis
    assert (
        transfers
        == [("amt", sent, "referral.requested")] + [("ude", told, "referral.status-changed")] * 3
    )
    assert all(t["at"] for t in report["deliveries"])
    page = render_html(report, "de")
    assert "Übermittlungen" in page and "§ 81 Abs. 1 AufenthG" in page


def test_events_topic_is_readable_without_our_code(running: Running) -> None:
    running.start_relay()
    p = running.partners
    with api_client(running.hub) as client:
        rid = client.post(
            "/v1/referrals", json=STUDENT_REFERRAL, headers=p.headers(client, "ude")
        ).json()["id"]
    [record] = [
        r
        for r in read_topic(running.hub.bootstrap_servers, "hub.events.v1", expect=1)
        if dict(r.headers).get("ce_subject") == rid.encode()
    ]
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "de.duisburg.talenthub.referral.requested.v1"
    assert headers["ce_source"] == "/partners/ude"
    assert headers["content-type"] == "application/json"
    assert headers["ce_time"].endswith("Z")
    data = json.loads(record.value)
    assert headers["ce_id"] == data["event_id"]
    assert record.key.decode() == data["person_id"] == headers["ce_partitionkey"]
