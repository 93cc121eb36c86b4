"""Rate limits, quotas, person-lookup enumeration, JSON shape limits and page sizes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hub.api.limits import MAX_JSON_DEPTH, MAX_JSON_ITEMS, json_shape_problem, scan_json_shape
from hub.api.ratelimit import Buckets, DailyQuota, NotFoundWatch
from hub.api.throttle import claimed_client_id
from hub.audit.models import AuditRecord
from tests.hubtest import STUDENT_REFERRAL, Partners, api_client, make_hub

PROBLEM_JSON = "application/problem+json"


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Limited:
    """A hub with some limits lowered, its client, partners and clock."""

    def __init__(self, database_url: str, tmp_path: Path, **limits: Any) -> None:
        self.hub, self.partners = make_hub(database_url, tmp_path, **limits)
        self.client = api_client(self.hub).__enter__()
        self.clock = FakeClock()
        self.client.app.state.limits.clock = self.clock  # type: ignore[attr-defined]

    def token(self, partner: str) -> str:
        return self.partners.token(self.client, partner)

    def bearer(self, partner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(partner)}"}

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.hub.engine.dispose()


@pytest.fixture
def limited(database_url: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Limited] = []

    def make(**limits: Any) -> Limited:
        made.append(Limited(database_url, tmp_path, **limits))
        return made[-1]

    yield make
    for hub in made:
        hub.close()


def assert_429(r: Any, fragment: str) -> int:
    """A 429 problem document naming the limit; returns Retry-After."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    doc = r.json()
    assert doc["status"] == 429 and doc["type"].endswith("/too-many-requests")
    assert fragment in doc["detail"]
    retry_after = int(r.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def enumeration_audits(hub: Any) -> list[dict[str, Any]]:
    with hub.session_factory() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "security.enumeration_suspected")
        )
        return [r.details for r in rows]


def basic(partners: Partners, partner: str, secret: str | None = None) -> tuple[str, str]:
    creds = partners.creds[partner]
    return creds["client_id"], secret if secret is not None else creds["client_secret"]


# ---------------------------------------------------------------------- API per partner


def test_api_calls_are_limited_per_partner(limited: Any) -> None:
    hub = limited(rate_limit_api_per_minute=3)
    ude, amt = hub.bearer("ude"), hub.bearer("amt")
    assert [hub.client.get("/v1/referrals", headers=ude).status_code for _ in range(3)] == [200] * 3
    retry_after = assert_429(hub.client.get("/v1/referrals", headers=ude), "API rate limit")
    assert retry_after == 20  # 3 per minute: the next call is possible in 20 s
    assert hub.client.get("/v1/referrals", headers=amt).status_code == 200, "other partners go on"
    hub.clock.now += 20
    assert hub.client.get("/v1/referrals", headers=ude).status_code == 200
    assert_429(hub.client.get("/v1/referrals", headers=ude), "API rate limit")


def test_writes_count_too_and_nothing_is_stored_when_limited(limited: Any) -> None:
    hub = limited(rate_limit_api_per_minute=1)
    ude = hub.bearer("ude")
    assert hub.client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).status_code == 202
    r = hub.client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude)
    assert_429(r, "API rate limit")
    hub.clock.now += 60
    assert len(hub.client.get("/v1/referrals", headers=ude).json()["items"]) == 1


def test_daily_quota_per_partner(limited: Any) -> None:
    hub = limited(rate_limit_api_per_day=2)
    ude = hub.bearer("ude")
    assert hub.client.get("/v1/referrals", headers=ude).status_code == 200
    assert hub.client.get("/v1/inbox", headers=ude).status_code == 200
    retry_after = assert_429(hub.client.get("/v1/referrals", headers=ude), "daily API quota")
    assert 1 <= retry_after <= 86_400
    hub.clock.now += retry_after
    assert hub.client.get("/v1/referrals", headers=ude).status_code == 200


# ---------------------------------------------------------------------- token endpoint


def test_tokens_are_limited_per_client(limited: Any) -> None:
    hub = limited(rate_limit_token_per_minute=2)
    form = {"grant_type": "client_credentials"}
    ude = basic(hub.partners, "ude")
    assert [hub.client.post("/oauth/token", data=form, auth=ude).status_code for _ in "ab"] == [
        200,
        200,
    ]
    r = hub.client.post("/oauth/token", data=form, auth=ude)
    assert assert_429(r, "token rate limit") == 30
    assert r.headers["Cache-Control"] == "no-store"
    assert (
        hub.client.post("/oauth/token", data=form, auth=basic(hub.partners, "amt")).status_code
        == 200
    )
    hub.clock.now += 30
    assert hub.client.post("/oauth/token", data=form, auth=ude).status_code == 200


def test_guessing_a_client_id_does_not_use_up_its_tokens(limited: Any) -> None:
    hub = limited(rate_limit_token_per_minute=2, rate_limit_auth_failures_per_minute=100)
    form = {"grant_type": "client_credentials"}
    wrong = basic(hub.partners, "ude", secret="not the secret")
    assert [hub.client.post("/oauth/token", data=form, auth=wrong).status_code for _ in "abc"] == [
        401
    ] * 3
    assert (
        hub.client.post("/oauth/token", data=form, auth=basic(hub.partners, "ude")).status_code
        == 200
    )


def test_failed_token_requests_throttle_the_source_address(limited: Any) -> None:
    hub = limited(rate_limit_auth_failures_per_minute=3)
    ude_token = hub.token("ude")  # fetched before the failures
    form = {"grant_type": "client_credentials"}
    wrong = basic(hub.partners, "ude", secret="guess")
    assert hub.client.post("/oauth/token", data=form, auth=wrong).status_code == 401
    assert (
        hub.client.post("/oauth/token", data={"grant_type": "password"}, auth=wrong).status_code
        == 400
    )
    assert hub.client.post("/oauth/token", data=form).status_code == 401
    # The address used up its failures: now even correct credentials wait.
    r = hub.client.post("/oauth/token", data=form, auth=basic(hub.partners, "amt"))
    assert_429(r, "too many failed token requests")
    assert r.headers["Cache-Control"] == "no-store"
    hub.clock.now += 20
    assert (
        hub.client.post("/oauth/token", data=form, auth=basic(hub.partners, "amt")).status_code
        == 200
    )
    # A token already held keeps working: the partner API limits partners, not addresses.
    r = hub.client.get("/v1/referrals", headers={"Authorization": f"Bearer {ude_token}"})
    assert r.status_code == 200


def test_bad_bearer_tokens_do_not_block_the_address(limited: Any) -> None:
    hub = limited(rate_limit_auth_failures_per_minute=1)
    for _ in range(5):
        assert (
            hub.client.get("/v1/referrals", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )
    assert hub.client.get("/v1/referrals", headers=hub.bearer("ude")).status_code == 200


def test_other_routes_are_not_throttled(limited: Any) -> None:
    hub = limited(rate_limit_auth_failures_per_minute=1, rate_limit_api_per_minute=1)
    assert (
        hub.client.post("/oauth/token", data={"grant_type": "client_credentials"}).status_code
        == 401
    )
    assert (
        hub.client.post("/oauth/token", data={"grant_type": "client_credentials"}).status_code
        == 429
    )
    for _ in range(3):
        assert hub.client.get("/health").status_code == 200
        assert hub.client.get("/.well-known/jwks.json").status_code == 200
        assert hub.client.get("/.well-known/oauth-authorization-server").status_code == 200
        assert hub.client.get("/staff/login").status_code == 200


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("authorization", "body", "expected"),
    [
        ("Basic " + base64.b64encode(b"ude-1234:secret").decode(), b"", "ude-1234"),
        ("basic " + base64.b64encode(b"a%3Ab:secret").decode(), b"", "a:b"),
        ("Basic !!!", b"", None),
        (None, b"grant_type=client_credentials&client_id=amt-1", "amt-1"),
        (
            None,
            f"client_assertion={_b64({'alg': 'ES256'})}.{_b64({'sub': 'hwk-9'})}.sig".encode(),
            "hwk-9",
        ),
        (None, b"client_assertion=not-a-jwt", None),
        (None, b"grant_type=client_credentials", None),
        (None, b"\xff\xfe", None),
    ],
)
def test_claimed_client_id(authorization: str | None, body: bytes, expected: str | None) -> None:
    assert claimed_client_id(authorization, body) == expected


# ---------------------------------------------------------------------- the algorithms


def test_bucket_refills_continuously_and_bursts_to_capacity() -> None:
    bucket = Buckets(per_minute=60)
    assert all(bucket.take("k", 0.0) == 0 for _ in range(60))
    assert bucket.take("k", 0.0) == pytest.approx(1.0)
    assert bucket.wait("k", 0.5) == pytest.approx(0.5)
    assert bucket.take("k", 1.0) == 0
    assert bucket.take("other", 1.0) == 0
    assert bucket.wait("k", 1000.0) == 0  # refilled, never above capacity:
    assert sum(bucket.take("k", 1000.0) == 0 for _ in range(100)) == 60


def test_daily_quota_resets_at_utc_midnight() -> None:
    quota = DailyQuota(per_day=1)
    noon = 19_000 * 86_400 + 43_200
    assert quota.take("p", noon) == 0
    assert quota.take("p", noon) == 43_200
    assert quota.take("p", noon + 43_200) == 0


def test_not_found_watch_counts_per_window() -> None:
    watch = NotFoundWatch(limit=2, window=100)
    assert [watch.missed("p", t) for t in (0, 1, 2)] == [False, True, False]
    assert watch.blocked("p", 50) == 50
    assert watch.blocked("q", 50) == 0
    assert watch.blocked("p", 100) == 0
    assert watch.missed("p", 101) is False


# ---------------------------------------------------------------------- enumeration


def unknown(n: int) -> str:
    return f"p-{n:032x}"


def test_person_enumeration_is_throttled_and_audited_once_per_window(limited: Any) -> None:
    hub = limited(enumeration_max_not_found=3, enumeration_window_seconds=600)
    ude, hwk = hub.bearer("ude"), hub.bearer("hwk")
    known = hub.client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()["person_id"]
    assert hub.client.get(f"/v1/people/{known}/timeline", headers=ude).status_code == 200
    for n in range(3):
        assert hub.client.get(f"/v1/people/{unknown(n)}/timeline", headers=hwk).status_code == 404
    assert enumeration_audits(hub.hub) == [
        {"partner_id": "hwk", "not_found": 3, "window_seconds": 600}
    ]
    for path in (f"/v1/people/{unknown(9)}/timeline", f"/v1/people/{known}/consents"):
        retry_after = assert_429(hub.client.get(path, headers=hwk), "person lookups are paused")
        assert retry_after == 600
    assert len(enumeration_audits(hub.hub)) == 1, "one audit record per window"
    # Other partners and other routes go on.
    assert hub.client.get(f"/v1/people/{known}/timeline", headers=ude).status_code == 200
    assert hub.client.get("/v1/referrals", headers=hwk).status_code == 200

    hub.clock.now += 600
    assert hub.client.get(f"/v1/people/{unknown(10)}/timeline", headers=hwk).status_code == 404


def test_found_persons_and_other_404s_do_not_count(limited: Any) -> None:
    hub = limited(enumeration_max_not_found=2)
    ude = hub.bearer("ude")
    referral = hub.client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    for _ in range(5):
        assert (
            hub.client.get(f"/v1/people/{referral['person_id']}/timeline", headers=ude).status_code
            == 200
        )
        missing = "/v1/referrals/00000000-0000-4000-8000-000000000000"
        assert hub.client.get(missing, headers=ude).status_code == 404
    assert hub.client.get(f"/v1/people/{unknown(1)}/timeline", headers=ude).status_code == 404
    assert enumeration_audits(hub.hub) == []


# ---------------------------------------------------------------------- JSON shape


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "[]" + "}" * (depth - 1)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (nested(MAX_JSON_DEPTH + 1), "nested deeper than 32"),
        ("[" * 20_000 + "]" * 20_000, "nested deeper than 32"),
        ("[" * 60_000, "nested deeper than 32"),
        (json.dumps({"payload": {"x": list(range(MAX_JSON_ITEMS + 1))}}), "more than 1000 members"),
        (json.dumps({f"k{i}": 1 for i in range(MAX_JSON_ITEMS + 1)}), "more than 1000 members"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/referrals", "/v1/connectors/university/messages"])
def test_deep_or_wide_json_is_422_before_parsing(
    client: TestClient, partners: Partners, body: str, fragment: str, path: str
) -> None:
    headers = {**partners.headers(client, "ude"), "Content-Type": "application/json"}
    r = client.post(path, content=body.encode(), headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert fragment in r.json()["detail"]


def test_json_limits_also_apply_without_content_type(
    client: TestClient, partners: Partners
) -> None:
    headers = partners.headers(client, "ude")
    r = client.post("/v1/referrals", content=nested(100).encode(), headers=headers)
    assert r.status_code == 422 and "nested deeper" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "residence.student", "payload": {"programme": "x' + b"9" * 5000 + b'"}',
        b'{"type": 1' + b"9" * 5000 + b"}",
        b'{"type": NaN, "performer": Infinity}',
        b'{"type": "\\ud800", "performer": "amt", "person": {"family_name": "\\udfff"}}',
        b'{"type": "\xff\xfe"}',
        b'{"type": "a", "type": "b"}',
        b'"just a string"',
        b"[]",
        b"null",
        nested(MAX_JSON_DEPTH).encode(),
    ],
)
def test_odd_json_is_a_4xx_problem_never_500(
    client: TestClient, partners: Partners, body: bytes
) -> None:
    headers = {**partners.headers(client, "ude"), "Content-Type": "application/json"}
    for path in ("/v1/referrals", "/v1/consents", "/v1/connectors/university/messages"):
        r = client.post(path, content=body, headers=headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', None),
        (b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', None),
        (b'{"a": "\\\\", "b": ' + b"[" * 33 + b"]" * 33 + b"}", "nested deeper than 4"),
        (b'{"a": "' + b"," * 2000 + b'"}', None),
        (b"[1, 2, 3]", "more than 2 members"),
        (b"[[1, 2], [3, 4]]", None),
        (b"[[[[]]]]", None),
        (b"[[[[[]]]]]", "nested deeper than 4"),
        (b"]]]", None),
    ],
)
def test_json_shape_scanner(body: bytes, problem: str | None) -> None:
    found = json_shape_problem(body, max_depth=4, max_items=2)
    assert (found is None) if problem is None else (found is not None and problem in found)
    assert scan_json_shape(body, max_depth=4, max_items=2) == found


@given(
    body=st.text(alphabet='[]{},"\\a ', max_size=40).map(str.encode),
    max_depth=st.integers(1, 6),
    max_items=st.integers(1, 6),
)
@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
def test_counting_first_never_changes_the_answer(
    body: bytes, max_depth: int, max_items: int
) -> None:
    """The shortcut (brackets and commas counted, strings included) only skips bodies the
    token-by-token scan also finds nothing in."""
    assert json_shape_problem(body, max_depth, max_items) == scan_json_shape(
        body, max_depth, max_items
    )


# ---------------------------------------------------------------------- page sizes


def list_endpoints(client: TestClient) -> dict[str, int]:
    """Every GET route with a ``limit`` query parameter, and its maximum, from the OpenAPI."""
    doc = client.get("/openapi.json").json()
    found = {}
    for path, ops in doc["paths"].items():
        for param in ops.get("get", {}).get("parameters", []):
            if param["name"] == "limit" and param["in"] == "query":
                found[path] = param["schema"].get("maximum")
    return found


def test_every_list_endpoint_caps_its_page_size(client: TestClient, partners: Partners) -> None:
    endpoints = list_endpoints(client)
    assert set(endpoints) >= {"/v1/referrals", "/v1/inbox"}
    headers = partners.headers(client, "ude")
    for path, maximum in endpoints.items():
        assert maximum is not None and maximum <= 200, path
        for too_many in (maximum + 1, 10_000, 0, -1):
            r = client.get(path, params={"limit": too_many}, headers=headers)
            assert r.status_code == 422, (path, too_many, r.text)
            assert r.headers["content-type"].startswith(PROBLEM_JSON)
            assert "limit" in r.json()["detail"]
        assert client.get(path, params={"limit": maximum}, headers=headers).status_code == 200


def test_every_collection_route_is_paged(client: TestClient) -> None:
    """Only per-item routes (a path parameter) may answer without a ``limit``."""
    doc = client.get("/openapi.json").json()
    unpaged = {
        path
        for path, ops in doc["paths"].items()
        if "get" in ops
        and not any(p["name"] == "limit" for p in ops["get"].get("parameters", []))
        and path.startswith("/v1/")
        and "{" not in path
    }
    assert unpaged == set()
