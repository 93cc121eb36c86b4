"""Consent withdrawn between acceptance and routing: held with its reason, released once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hub.db import unit_of_work
from hub.routing import service as routing
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for

pytestmark = pytest.mark.integration

CONSENT = {
    "purpose": "counselling",
    "partners": ["jobcenter", "amt"],
    "granted_on": "2026-11-02",
    "evidence_reference": "Einwilligung ITC 2026/117",
    "notice_language": "ar",
}
COUNSELLING = {
    "type": "counselling.talent-center",
    "performer": "amt",
    "payload": {"topic": "Berufliche Orientierung", "preferred_language": "ar"},
}


def test_withdrawn_consent_holds_the_referral_and_regrant_releases_it_once(
    running: Running,
) -> None:
    with api_client(running.hub) as client:
        jc, amt = (
            running.partners.headers(client, "jobcenter"),
            running.partners.headers(client, "amt"),
        )
        person: dict[str, Any] = {"family_name": "Haddad", "partner_reference": "123D456789"}
        refused = client.post("/v1/referrals", json={**COUNSELLING, "person": person}, headers=jc)
        assert refused.status_code == 403 and "consent" in refused.json()["detail"]

        consent = client.post("/v1/consents", json={**CONSENT, "person": person}, headers=jc)
        assert consent.status_code == 201, consent.text
        person_id = consent.json()["person_id"]
        created = client.post(
            "/v1/referrals", json={**COUNSELLING, "person": {"id": person_id}}, headers=jc
        )
        assert created.status_code == 202, created.text
        rid = created.json()["id"]
        withdrawn = client.post(f"/v1/consents/{consent.json()['id']}/withdraw", headers=jc)
        assert withdrawn.status_code == 200 and withdrawn.json()["active"] is False

        running.start_relay()
        for name in ("router", "inbox"):
            running.start_consumer_thread(name)

        def held() -> list[dict[str, Any]]:
            """the referral shows its delivery held, with the reason"""
            return list(client.get(f"/v1/referrals/{rid}", headers=jc).json()["holds"])

        [hold] = wait_for(held)
        assert hold["recipient"] == "amt" and "consent" in hold["reason"]
        time.sleep(2)
        assert client.get("/v1/inbox", headers=amt).json()["items"] == []

        regranted = client.post(
            "/v1/consents", json={**CONSENT, "person": {"id": person_id}}, headers=jc
        )
        assert regranted.status_code == 201
        for _ in range(2):  # releasing twice must not deliver twice
            with unit_of_work(running.hub.session_factory) as session:
                for h in routing.pending_holds(session, person_id=person_id) or []:
                    routing.release(
                        session, hold=h, policy=running.hub.policy, settings=running.hub.settings
                    )

        def delivered() -> list[dict[str, Any]]:
            """amt's inbox holds the referral"""
            items = client.get("/v1/inbox", headers=amt).json()["items"]
            return [i for i in items if i["referral_id"] == rid]

        [item] = wait_for(delivered)
        assert set(item["data"]["person"]) <= {"given_name", "family_name"}  # policy fields only
        time.sleep(2)
        assert len(delivered()) == 1
        assert held() == []
