"""Consent withdrawn while pushes to the performer are pending: held, never pushed, and
delivered exactly once after a new consent and a release."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hub.db import unit_of_work
from hub.deliveries.models import DeliveryState
from hub.routing import service as routing
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims

pytestmark = pytest.mark.integration

CONSENT = {
    "purpose": "counselling",
    "partners": ["jobcenter", "amt"],
    "granted_on": "2026-11-02",
    "evidence_reference": "Einwilligung ITC 2026/140",
    "notice_language": "fa",
}
COUNSELLING = {
    "type": "counselling.talent-center",
    "performer": "amt",
    "payload": {"topic": "Anerkennung und Sprachkurs", "preferred_language": "fa"},
}


@pytest.fixture
def amt(running: Running) -> Iterator[Sim]:
    [sim] = start_sims(running, ["amt"]).values()
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    yield sim
    sim.server.stop()


def pushed(sim: Sim, referral_id: str) -> list[Any]:
    return [d for d in sim.received().values() if d.referral_id == referral_id]


def release_all(running: Running, person_id: str) -> list[str | None]:
    with unit_of_work(running.hub.session_factory) as session:
        return [
            routing.release(
                session, hold=h, policy=running.hub.policy, settings=running.hub.settings
            )
            for h in routing.pending_holds(session, person_id=person_id)
        ]


def test_pushes_pending_at_withdrawal_are_held_and_go_out_once_after_a_new_consent(
    running: Running, amt: Sim
) -> None:
    amt.server.down()
    with api_client(running.hub) as client:
        jc, ude = (running.partners.headers(client, p) for p in ("jobcenter", "ude"))
        person = {"family_name": "Rahimi", "given_name": "Sara"}
        consent = client.post("/v1/consents", json={**CONSENT, "person": person}, headers=jc)
        assert consent.status_code == 201, consent.text
        pid = consent.json()["person_id"]
        counselling = []
        for _ in range(2):  # one person's: the second waits behind the first
            r = client.post(
                "/v1/referrals", json={**COUNSELLING, "person": {"id": pid}}, headers=jc
            )
            assert r.status_code == 202, r.text
            counselling.append(r.json()["id"])
        student = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
        assert student.status_code == 202, student.text
        start_delivery(running)

        def paused() -> bool:
            """the delivery to amt retries while amt is down"""
            with running.hub.session_factory() as s:
                state = s.scalars(
                    select(DeliveryState).where(DeliveryState.partner_id == "amt")
                ).first()
                return bool(state and state.paused)

        wait_for(paused, timeout=60)
        withdrawn = client.post(f"/v1/consents/{consent.json()['id']}/withdraw", headers=jc)
        assert withdrawn.status_code == 200, withdrawn.text
        amt.server.up()

        # a statutory route flows on; the consent-based pushes are held, never pushed
        wait_for(lambda: pushed(amt, student.json()["id"]), timeout=60)

        def held() -> list[str]:
            """both counselling pushes are held for amt with the consent reason"""
            holds = [
                h
                for rid in counselling
                for h in client.get(f"/v1/referrals/{rid}", headers=jc).json()["holds"]
            ]
            assert all(h["recipient"] == "amt" and "consent" in h["reason"] for h in holds)
            return [h["event_id"] for h in holds] if len(holds) == 2 else []

        wait_for(held, timeout=60)
        time.sleep(2)
        assert [pushed(amt, rid) for rid in counselling] == [[], []]

        again = client.post("/v1/consents", json={**CONSENT, "person": {"id": pid}}, headers=jc)
        assert again.status_code == 201
        assert release_all(running, pid) == [None, None]
        assert release_all(running, pid) == []  # a second release sends nothing

        wait_for(lambda: all(pushed(amt, rid) for rid in counselling), timeout=60)
        time.sleep(2)
        for rid in [*counselling, student.json()["id"]]:
            [delivery] = pushed(amt, rid)
            assert delivery.received_count == 1, f"{rid} pushed exactly once"
        for rid in counselling:
            assert client.get(f"/v1/referrals/{rid}", headers=jc).json()["holds"] == []
