"""Listing with filters and cursors, and the OpenAPI description."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from tests.hubtest import STUDENT_REFERRAL, Partners, api_client


def test_list_filters_and_paginates(client: TestClient, partners: Partners) -> None:
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    ids = []
    for i in range(5):
        body = copy.deepcopy(STUDENT_REFERRAL)
        body["person"]["partner_reference"] = f"ES{i:09d}"
        ids.append(client.post("/v1/referrals", json=body, headers=ude).json()["id"])
    client.post(f"/v1/referrals/{ids[0]}/status", json={"status": "accepted"}, headers=amt)

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/referrals", params=params, headers=ude).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5

    accepted = client.get("/v1/referrals", params={"status": "accepted"}, headers=ude).json()
    assert [i["id"] for i in accepted["items"]] == [ids[0]]
    as_performer = client.get("/v1/referrals", params={"role": "performer"}, headers=ude).json()
    assert as_performer["items"] == []
    assert (
        len(client.get("/v1/referrals", params={"role": "performer"}, headers=amt).json()["items"])
        == 5
    )
    bad = client.get("/v1/referrals", params={"cursor": "%%%"}, headers=ude)
    assert bad.status_code == 422
    assert client.get("/v1/referrals", params={"limit": 1000}, headers=ude).status_code == 422


def test_same_partner_reference_is_the_same_person(client: TestClient, partners: Partners) -> None:
    ude = partners.headers(client, "ude")
    first = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    second = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    assert first["person_id"] == second["person_id"] and first["id"] != second["id"]


def test_openapi_describes_the_api_with_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/v1/referrals",
        "/v1/referrals/{referral_id}",
        "/v1/referrals/{referral_id}/status",
        "/v1/inbox",
        "/v1/inbox/{event_id}/ack",
        "/v1/people/{person_id}/timeline",
        "/oauth/token",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/health",
    } <= paths
    create = doc["components"]["schemas"]["ReferralCreate"]
    assert create["examples"][0]["type"] == "residence.student"
    assert "409" in doc["paths"]["/v1/referrals/{referral_id}/status"]["post"]["responses"]


def test_health_names_the_failing_check(hub_and_partners) -> None:  # type: ignore[no-untyped-def]
    from tests.hubtest import api_client

    with api_client(hub_and_partners[0], kafka_up=False) as c:
        r = c.get("/health")
    assert r.status_code == 503
    assert r.json() == {"status": "degraded", "checks": {"database": "ok", "kafka": "down"}}


def test_readiness_needs_only_the_database_and_liveness_nothing(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    with api_client(hub, kafka_up=False) as client:
        assert client.get("/health").status_code == 503
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
        assert client.get("/health/live").json() == {"status": "ok"}
        # The database gone: not ready (no intake possible), still alive (a restart cures nothing).
        unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
        client.app.state.session_factory = sessionmaker(bind=unreachable)  # type: ignore[attr-defined]
        assert client.get("/health/ready").status_code == 503
        assert client.get("/health/live").status_code == 200
