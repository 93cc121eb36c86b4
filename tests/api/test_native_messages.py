"""Native partner formats at ``POST /v1/connectors/{kind}/messages``: same rules as the API."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fastapi.testclient import TestClient

from tests.hubtest import Partners


def example(kind: str, name: str) -> dict[str, Any]:
    text = resources.files("connectors").joinpath(f"{kind}/examples/{name}").read_text("utf-8")
    return dict(json.loads(text))


def test_university_admission_creates_a_residence_referral(
    client: TestClient, partners: Partners
) -> None:
    ude = partners.headers(client, "ude")
    r = client.post(
        "/v1/connectors/university/messages",
        json=example("university", "inbound-zulassung.json"),
        headers=ude,
    )
    assert r.status_code == 202, r.text
    [op] = r.json()["operations"]
    assert op["operation"] == "create-referral" and op["status"] == "requested"
    view = client.get(f"/v1/referrals/{op['id']}", headers=ude).json()
    assert (view["type"], view["performer"]) == ("residence.student", "amt")
    assert view["payload"]["semester"] == "2027S"
    again = client.post(
        "/v1/connectors/university/messages",
        json=example("university", "inbound-zulassung.json"),
        headers=ude,
    )
    assert again.json()["operations"] == [op], "the message id makes a repeat idempotent"


def test_chamber_status_record_moves_the_referral(client: TestClient, partners: Partners) -> None:
    amt, fosa = partners.headers(client, "amt"), partners.headers(client, "ihk-fosa")
    created = client.post(
        "/v1/referrals",
        headers=amt,
        json={
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"family_name": "Okafor"},
            "payload": {},
        },
    ).json()
    record = example("chamber", "inbound-verfahrensstand.json")
    now = datetime.now(UTC).isoformat()
    for i, code in enumerate(
        ("ANTRAG_EINGEGANGEN", "EINGANG_BESTAETIGT", "UNTERLAGEN_NACHGEFORDERT")
    ):
        msg = {
            **record,
            "vermittlung_id": created["id"],
            "status": code,
            "zeitpunkt": now,
            "nachricht_id": f"00000000-0000-4000-8000-{i:012d}",
        }
        r = client.post("/v1/connectors/chamber/messages", json=msg, headers=fosa)
        assert r.status_code == 202, r.text
    view = client.get(f"/v1/referrals/{created['id']}", headers=amt).json()
    assert (view["status"], view["business_status"]) == ("on-hold", "DOCUMENTS_REQUESTED")
    assert "FOSA-2027" not in json.dumps(view), "the file number stays with the chamber"


def test_native_errors_name_the_field(client: TestClient, partners: Partners) -> None:
    ude = partners.headers(client, "ude")
    bad = copy.deepcopy(example("university", "inbound-zulassung.json"))
    del bad["matrikelnummer"]
    r = client.post("/v1/connectors/university/messages", json=bad, headers=ude)
    assert r.status_code == 422 and "matrikelnummer" in r.json()["detail"], r.text
    bad = {**example("university", "inbound-zulassung.json"), "zulassungsdatum": "15.02.2027"}
    r = client.post("/v1/connectors/university/messages", json=bad, headers=ude)
    assert r.status_code == 422 and "zulassungsdatum" in r.json()["detail"], r.text
    r = client.post(
        "/v1/connectors/chamber/messages",
        json=example("university", "inbound-zulassung.json"),
        headers=ude,
    )
    assert r.status_code == 403, r.text
    assert client.post("/v1/connectors/bakery/messages", json={}, headers=ude).status_code == 422
