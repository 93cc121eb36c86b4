"""Retention per route: due referrals are listed by the dry run and shredded by the job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from hub.db import unit_of_work, utcnow
from hub.privacy import retention
from tests.hubtest import STUDENT_REFERRAL, Partners


def test_retention_dry_run_then_shred(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    hub = hub_and_partners[0]
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    done = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    other = {
        **STUDENT_REFERRAL,
        "person": {**STUDENT_REFERRAL["person"], "partner_reference": "ES000000001"},
    }
    open_one = client.post("/v1/referrals", json=other, headers=ude).json()
    for step in (
        {"status": "accepted"},
        {"status": "completed", "outcome": "granted", "business_status": "PERMIT_GRANTED"},
    ):
        client.post(f"/v1/referrals/{done['id']}/status", json=step, headers=amt)
    later = utcnow() + timedelta(days=731)  # the route keeps residence.student for 730 days
    with unit_of_work(hub.session_factory) as session:
        assert retention.due(session, policy=hub.policy, now=utcnow()) == []
        [item] = retention.due(session, policy=hub.policy, now=later)
    assert (item.referral_id, item.erase_person) == (done["id"], True)
    assert client.get(f"/v1/referrals/{done['id']}", headers=ude).json()["payload"]["programme"]

    with unit_of_work(hub.session_factory) as session:
        retention.shred(session, policy=hub.policy, now=later, topic=hub.settings.topic_events)
    assert client.get(f"/v1/referrals/{done['id']}", headers=ude).json()["payload"] == {}
    kept = client.get(f"/v1/referrals/{open_one['id']}", headers=ude).json()
    assert kept["payload"]["programme"] == STUDENT_REFERRAL["payload"]["programme"]
