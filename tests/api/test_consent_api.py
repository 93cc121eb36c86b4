"""Consent over the API: recorded, listed for covered partners only, withdrawn; bad input 4xx."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.db import unit_of_work
from hub.errors import NotFound
from hub.privacy.service import erase_person
from tests.hubtest import Partners

CONSENT = {
    "purpose": "counselling",
    "partners": ["jobcenter", "amt"],
    "granted_on": "2026-11-02",
    "evidence_reference": "Einwilligung ITC 2026/118",
    "notice_language": "uk",
}


def test_consent_lifecycle_and_visibility(client: TestClient, partners: Partners) -> None:
    jc = partners.headers(client, "jobcenter")
    r = client.post(
        "/v1/consents", json={**CONSENT, "person": {"family_name": "Koval"}}, headers=jc
    )
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["active"] and consent["recorded_by"] == "jobcenter"
    path = f"/v1/people/{consent['person_id']}/consents"
    assert [c["id"] for c in client.get(path, headers=partners.headers(client, "amt")).json()] == [
        consent["id"]
    ]
    # hwk has neither a consent nor a referral with the person: the 404 of an unknown one.
    assert client.get(path, headers=partners.headers(client, "hwk")).status_code == 404
    assert (
        client.post(
            f"/v1/consents/{consent['id']}/withdraw", headers=partners.headers(client, "hwk")
        ).status_code
        == 404
    )
    withdrawn = client.post(f"/v1/consents/{consent['id']}/withdraw", headers=jc)
    assert withdrawn.status_code == 200 and not withdrawn.json()["active"]
    again = client.post(f"/v1/consents/{consent['id']}/withdraw", headers=jc)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"person": {"id": "p_doesnotexist00000000"}}, "person.id"),
        ({"person": {"family_name": "Koval"}, "purpose": "enforcement"}, "purpose"),
        ({"person": {"family_name": "Koval"}, "partners": ["amt"]}, "partners"),
        ({"person": {"family_name": "Koval"}, "partners": ["jobcenter", "nobody"]}, "partners"),
        ({"person": {"family_name": "Koval"}, "granted_on": "2999-01-01"}, "granted_on"),
    ],
)
def test_bad_consent_is_422(
    client: TestClient, partners: Partners, change: dict[str, Any], fragment: str
) -> None:
    r = client.post(
        "/v1/consents", json={**CONSENT, **change}, headers=partners.headers(client, "jobcenter")
    )
    assert r.status_code == 422, r.text
    assert fragment in r.text


def test_erasing_an_unknown_person_changes_nothing(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    with pytest.raises(NotFound), unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id="p_doesnotexist00000000",
            reason="request-art-17",
            by="staff:dsb",
            topic=hub.settings.topic_events,
        )
