"""Bad input gets a 4xx problem document naming what is wrong, and nothing is half-written."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select

from hub.auth.keys import SigningKeys
from hub.outbox.models import OutboxEvent
from hub.people.models import Person
from hub.referrals.models import Referral
from tests.hubtest import STUDENT_REFERRAL, Partners


def counts(hub: Any) -> tuple[int, int, int]:
    with hub.session_factory() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) for m in (Referral, OutboxEvent, Person)
        )  # type: ignore[return-value]


def assert_problem(r: Any, status: int, fragment: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    doc = r.json()
    assert doc["status"] == status and doc["type"].startswith("https://")
    assert fragment in doc["detail"], doc


def with_changes(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(STUDENT_REFERRAL)
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (with_changes(type="residence.unknown"), 422, "unknown referral type 'residence.unknown'"),
        (with_changes(performer="nobody"), 422, "performer 'nobody' is not a registered partner"),
        (with_changes(performer="ihk-fosa"), 422, "performer 'ihk-fosa' is of kind 'chamber'"),
        (with_changes(colour="blue"), 422, "colour: Extra inputs are not permitted"),
        (with_changes(payload={"programme": "x", "religion": "none"}), 422, "payload.religion"),
        (with_changes(person={"given_name": "Wei"}), 422, "person"),
        (
            with_changes(person={"family_name": "Li", "birth_date": "03.04.2001"}),
            422,
            "person.birth_date",
        ),
        (
            with_changes(type="jobcenter.integration", performer="jobcenter", payload={}),
            403,
            "may not request 'jobcenter.integration'",
        ),
    ],
)
def test_bad_referrals_are_refused_and_nothing_is_stored(
    client: TestClient,
    partners: Partners,
    hub_and_partners: Any,
    body: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    hub = hub_and_partners[0]
    before = counts(hub)
    r = client.post("/v1/referrals", json=body, headers=partners.headers(client, "ude"))
    assert_problem(r, status, fragment)
    assert counts(hub) == before


def test_malformed_json_is_400(client: TestClient, partners: Partners) -> None:
    headers = {**partners.headers(client, "ude"), "Content-Type": "application/json"}
    r = client.post("/v1/referrals", content=b'{"type": "residence.student",', headers=headers)
    assert_problem(r, 400, "not valid JSON")


def test_oversized_body_is_413(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    before = counts(hub_and_partners[0])
    big = with_changes(payload={"programme": "x" * 70_000})
    r = client.post("/v1/referrals", json=big, headers=partners.headers(client, "ude"))
    assert_problem(r, 413, "exceeds")
    assert counts(hub_and_partners[0]) == before


def test_illegal_transitions_are_409(client: TestClient, partners: Partners) -> None:
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    rid = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()["id"]
    assert_problem(
        client.post(f"/v1/referrals/{rid}/status", json={"status": "accepted"}, headers=ude),
        409,
        "only the performer",
    )
    assert_problem(
        client.post(f"/v1/referrals/{rid}/status", json={"status": "completed"}, headers=amt),
        409,
        "cannot move to 'completed'",
    )
    assert_problem(
        client.post(f"/v1/referrals/{rid}/status", json={"status": "done"}, headers=amt),
        422,
        "status",
    )
    history = client.get(f"/v1/referrals/{rid}", headers=ude).json()["history"]
    assert [h["status"] for h in history] == ["requested"]


def test_non_participant_sees_nothing(client: TestClient, partners: Partners) -> None:
    rid = client.post(
        "/v1/referrals", json=STUDENT_REFERRAL, headers=partners.headers(client, "ude")
    ).json()
    hwk = partners.headers(client, "hwk")
    assert_problem(client.get(f"/v1/referrals/{rid['id']}", headers=hwk), 404, "no referral")
    assert_problem(
        client.post(f"/v1/referrals/{rid['id']}/status", json={"status": "accepted"}, headers=hwk),
        404,
        "no referral",
    )
    assert_problem(
        client.get(f"/v1/people/{rid['person_id']}/timeline", headers=hwk), 404, "no person"
    )
    assert client.get("/v1/referrals", headers=hwk).json()["items"] == []


def test_missing_scope_is_403(client: TestClient, partners: Partners) -> None:
    read_only = partners.headers(client, "ude", scope="referrals:read")
    r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=read_only)
    assert_problem(r, 403, "referrals:write")


def _token(key: Any, alg: str, claims: dict[str, Any], kid: str, typ: str = "at+jwt") -> str:
    return jwt.encode({"alg": alg, "typ": typ, "kid": kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """Algorithm confusion: HMAC keyed with the public key (joserfc refuses to build it)."""
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
        + "."
        + _b64(json.dumps(claims).encode())
    )
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def bad_tokens(hub: Any, client: TestClient) -> dict[str, str]:
    """Tokens an attacker or a broken client might send; the real key signs where it matters."""
    with hub.session_factory() as session:
        ours = SigningKeys().current(session)
        session.commit()
    kid = ours.thumbprint()
    now = int(time.time())
    s = hub.settings
    good = {
        "iss": s.resolved_issuer,
        "aud": s.api_audience,
        "sub": "ude-x",
        "client_id": "ude-x",
        "partner_id": "ude",
        "scope": "referrals:read",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
    }
    none_header = _b64(b'{"alg":"none","typ":"at+jwt"}')
    payload = _b64(json.dumps(good).encode())
    public_pem = ours.as_pem(private=False)
    return {
        "control (valid)": _token(ours, "ES256", good, kid),
        "alg none": f"{none_header}.{payload}.",
        "forged (foreign key, our kid)": _token(ECKey.generate_key("P-256"), "ES256", good, kid),
        "HS256 with our public key": _hs256(public_pem, good, kid),
        "expired": _token(
            ours, "ES256", {**good, "exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}, kid
        ),
        "wrong audience": _token(ours, "ES256", {**good, "aud": "urn:other:api"}, kid),
        "wrong issuer": _token(ours, "ES256", {**good, "iss": "https://evil.example"}, kid),
        "no typ": _token(ours, "ES256", good, kid, typ="JWT"),
        "garbage": "not-a-jwt",
    }


def test_bad_tokens_are_401(client: TestClient, hub_and_partners: Any) -> None:
    tokens = bad_tokens(hub_and_partners[0], client)
    control = tokens.pop("control (valid)")
    assert (
        client.get("/v1/referrals", headers={"Authorization": f"Bearer {control}"}).status_code
        == 200
    )
    for name, token in tokens.items():
        r = client.get("/v1/referrals", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (name, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/referrals").status_code == 401


def test_idempotency_key(client: TestClient, partners: Partners, hub_and_partners: Any) -> None:
    ude = {**partners.headers(client, "ude"), "Idempotency-Key": "k-1"}
    first = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    before = counts(hub_and_partners[0])
    again = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert (again.status_code, again.json(), again.headers["Location"]) == (
        first.status_code,
        first.json(),
        first.headers["Location"],
    )
    assert counts(hub_and_partners[0]) == before
    other = client.post(
        "/v1/referrals", json=with_changes(payload={"programme": "B.Sc."}), headers=ude
    )
    assert_problem(other, 409, "different request")
    assert counts(hub_and_partners[0]) == before


def test_refused_calls_are_audited(client: TestClient, hub_and_partners: Any) -> None:
    from hub.audit.service import list_records
    from hub.audit.verify import verify
    from hub.runtime import build_sequencer

    assert client.get("/v1/referrals", headers={"Authorization": "Bearer x"}).status_code == 401
    with hub_and_partners[0].session_factory() as session:
        denied = [r for r in list_records(session) if r.action == "api.denied"]
        assert denied and denied[-1].details == {
            "method": "GET",
            "status": 401,
            "route": "/v1/referrals",
        }
    assert build_sequencer(hub_and_partners[0]).step().leaves >= 1
    with hub_and_partners[0].session_factory() as session:
        assert verify(session).ok


def test_status_occurring_in_the_future_is_422(client: TestClient, partners: Partners) -> None:
    rid = client.post(
        "/v1/referrals", json=STUDENT_REFERRAL, headers=partners.headers(client, "ude")
    ).json()["id"]
    r = client.post(
        f"/v1/referrals/{rid}/status",
        headers=partners.headers(client, "amt"),
        json={"status": "accepted", "occurred_at": "2999-01-01T00:00:00Z"},
    )
    assert_problem(r, 422, "occurred_at lies in the future")


def test_a_cursor_of_digits_that_are_not_ascii_is_422(
    client: TestClient, partners: Partners
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` fails: a cursor must be ASCII digits."""
    amt = partners.headers(client, "amt")
    for cursor in ("%C2%B2", "%D9%A3"):  # superscript two, Arabic-Indic three
        r = client.get(f"/v1/inbox?cursor={cursor}", headers=amt)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "cursor" in r.text
