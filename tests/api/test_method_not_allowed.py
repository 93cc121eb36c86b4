"""A 405 names every method the path is served with (RFC 9110 §15.5.6), not just one route's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hubtest import api_client, make_hub

CASES = [
    ("OPTIONS", "/v1/referrals", "GET, POST"),
    ("DELETE", "/v1/referrals", "GET, POST"),
    ("PUT", "/v1/referrals/00000000-0000-4000-8000-000000000000", "GET"),
    ("GET", "/v1/consents", "POST"),
    ("POST", "/v1/people/p-1/consents", "GET"),
    ("GET", "/oauth/token", "POST"),
]


@pytest.mark.parametrize(("method", "path", "allow"), CASES)
def test_405_lists_every_method_of_the_path(
    database_url: str, tmp_path: Path, method: str, path: str, allow: str
) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    with api_client(hub) as client:
        r = client.request(method, path)
    hub.engine.dispose()
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/problem+json"


def test_allow_names_only_methods_that_work(database_url: str, tmp_path: Path) -> None:
    hub, partners = make_hub(database_url, tmp_path)
    with api_client(hub) as client:
        allow = client.options("/v1/referrals").headers["allow"]
        headers = partners.headers(client, "amt")
        answers = {m: client.request(m, "/v1/referrals", headers=headers) for m in ("GET", "HEAD")}
    hub.engine.dispose()
    assert "GET" in allow.split(", ") and answers["GET"].status_code == 200
    assert ("HEAD" in allow.split(", ")) == (answers["HEAD"].status_code != 405)
