"""Retention per route: due referrals are listed by the dry run and shredded by the job."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.db import unit_of_work, utcnow
from hub.outbox.models import OutboxEvent
from hub.privacy import retention
from hub.privacy.service import erase_person
from schemas.cloudevents import EventType
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


def _erasures(hub: Any, person_id: str) -> int:
    """PersonErased events the hub committed for the person (each lands on the timeline)."""
    with unit_of_work(hub.session_factory) as session:
        rows = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == hub.settings.topic_events)
        )
        return sum(
            1
            for row in rows
            if dict(row.headers).get("ce_type") == EventType.PERSON_ERASED
            and json.loads(row.value)["person_id"] == person_id
        )


def _shred(hub: Any, now: datetime) -> list[retention.Due]:
    """One night's retention run."""
    with unit_of_work(hub.session_factory) as session:
        return retention.shred(session, policy=hub.policy, now=now, topic=hub.settings.topic_events)


def _complete(client: TestClient, amt: dict[str, str], referral_id: str) -> None:
    for step in (
        {"status": "accepted"},
        {"status": "completed", "outcome": "granted", "business_status": "PERMIT_GRANTED"},
    ):
        r = client.post(f"/v1/referrals/{referral_id}/status", json=step, headers=amt)
        assert r.status_code == 200, r.text


def test_running_retention_again_changes_nothing(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    """The job runs every night: a second run neither shreds nor erases anyone again."""
    hub = hub_and_partners[0]
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    done = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    _complete(client, amt, done["id"])
    later = utcnow() + timedelta(days=731)
    first = _shred(hub, later)
    assert [(i.referral_id, i.erase_person) for i in first] == [(done["id"], True)]
    assert _erasures(hub, done["person_id"]) == 1
    with unit_of_work(hub.session_factory) as session:
        assert retention.due(session, policy=hub.policy, now=later + timedelta(days=1)) == []
    assert _shred(hub, later + timedelta(days=1)) == []
    assert _erasures(hub, done["person_id"]) == 1


def test_a_person_goes_when_their_last_kept_referral_is_shredded(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    """A referral shredded on an earlier night keeps nobody: the last one erases the person."""
    hub = hub_and_partners[0]
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    first = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    _complete(client, amt, first["id"])
    person = {"id": first["person_id"]}
    second = client.post(
        "/v1/referrals", json={**STUDENT_REFERRAL, "person": person}, headers=ude
    ).json()
    assert second["person_id"] == first["person_id"]
    night = utcnow() + timedelta(days=731)
    [item] = _shred(hub, night)
    assert (item.referral_id, item.erase_person) == (first["id"], False)  # the second is open
    _complete(client, amt, second["id"])
    [item] = _shred(hub, utcnow() + timedelta(days=731))
    assert (item.referral_id, item.erase_person) == (second["id"], True)
    assert _erasures(hub, first["person_id"]) == 1


def test_a_person_erased_on_request_is_not_erased_again_by_retention(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    hub = hub_and_partners[0]
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    done = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    _complete(client, amt, done["id"])
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id=done["person_id"],
            reason="request-art-17",
            by="cli:erase",
            topic=hub.settings.topic_events,
        )
    [item] = _shred(hub, utcnow() + timedelta(days=731))
    assert (item.referral_id, item.erase_person) == (done["id"], False)
    assert _erasures(hub, done["person_id"]) == 1
