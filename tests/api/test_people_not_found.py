"""Every partner route about a person answers a person the caller has no relation to exactly
as it answers a person that does not exist: 404, the same problem apart from ``instance``.
Otherwise a partner could learn who else is known to the hub."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.hubtest import STUDENT_REFERRAL, Partners

ROUTES = ["/v1/people/{}/timeline", "/v1/people/{}/consents"]
UNKNOWN = "p_AAAAAAAAAAAAAAAAAAAAAA"


def problem(body: dict[str, Any], person_id: str) -> dict[str, Any]:
    """The problem without what names the request (its instance, the id asked for)."""
    return {k: str(v).replace(person_id, "<id>") for k, v in body.items() if k not in ("instance",)}


@pytest.mark.parametrize("route", ROUTES)
def test_a_stranger_and_a_nobody_look_the_same(
    route: str, partners: Partners, client: TestClient
) -> None:
    created = client.post(
        "/v1/referrals", json=STUDENT_REFERRAL, headers=partners.headers(client, "ude")
    )
    assert created.status_code == 202, created.text
    known = created.json()["person_id"]
    # hwk takes no part in the student's referral and recorded no consent for them.
    hwk = partners.headers(client, "hwk")
    stranger = client.get(route.format(known), headers=hwk)
    nobody = client.get(route.format(UNKNOWN), headers=hwk)
    assert (stranger.status_code, nobody.status_code) == (404, 404), (stranger.text, nobody.text)
    assert stranger.headers["content-type"] == nobody.headers["content-type"]
    assert problem(stranger.json(), known) == problem(nobody.json(), UNKNOWN)
    # The party itself still reads it.
    assert (
        client.get(route.format(known), headers=partners.headers(client, "ude")).status_code == 200
    )
