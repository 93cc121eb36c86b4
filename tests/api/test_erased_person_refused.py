"""Nothing new is recorded for an erased person: their pseudonym names nobody any more."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.consent.models import Consent
from hub.db import unit_of_work
from hub.privacy.service import erase_person
from hub.referrals.models import Referral
from tests.hubtest import STUDENT_REFERRAL, Partners

CONSENT = {
    "purpose": "counselling",
    "partners": ["jobcenter", "amt"],
    "granted_on": "2026-11-02",
    "evidence_reference": "Einwilligung ITC 2026/131 Frau Haddad",
    "notice_language": "ar",
}


def test_a_referral_or_consent_for_an_erased_person_is_refused(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    hub = hub_and_partners[0]
    ude, jc = partners.headers(client, "ude"), partners.headers(client, "jobcenter")
    created = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert created.status_code == 202, created.text
    person_id = created.json()["person_id"]
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id=person_id,
            reason="request-art-17",
            by="staff:dsb",
            topic=hub.settings.topic_events,
        )

    again = client.post(
        "/v1/referrals", json={**STUDENT_REFERRAL, "person": {"id": person_id}}, headers=ude
    )
    consent = client.post("/v1/consents", json={**CONSENT, "person": {"id": person_id}}, headers=jc)
    for r in (again, consent):
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "erased" in r.json()["detail"]
    with hub.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Consent)) == 0
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
