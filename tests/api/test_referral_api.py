"""The partner API over HTTP, in process, against a real database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.hubtest import STUDENT_REFERRAL, Partners


def test_walkthrough_referral_is_accepted_and_completed(
    client: TestClient, partners: Partners
) -> None:
    ude = partners.headers(client, "ude")
    amt = partners.headers(client, "amt")
    r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "requested"
    assert body["person_id"].startswith("p_")
    assert r.headers["Location"] == f"/v1/referrals/{body['id']}"

    for step in (
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "completed", "business_status": "PERMIT_GRANTED", "outcome": "granted"},
    ):
        r = client.post(f"/v1/referrals/{body['id']}/status", json=step, headers=amt)
        assert r.status_code == 200, r.text

    r = client.get(f"/v1/referrals/{body['id']}", headers=ude)
    assert r.status_code == 200
    view = r.json()
    assert view["status"] == "completed"
    # The route shares no permit decision with the university: the status only.
    assert view["business_status"] is None
    assert view["history"][-1]["outcome"] is None
    own = client.get(f"/v1/referrals/{body['id']}", headers=amt).json()
    assert (own["business_status"], own["history"][-1]["outcome"]) == ("PERMIT_GRANTED", "granted")
    assert [h["status"] for h in view["history"]] == [
        "requested",
        "accepted",
        "in-progress",
        "completed",
    ]
    assert [h["set_by"] for h in view["history"]] == ["ude", "amt", "amt", "amt"]
