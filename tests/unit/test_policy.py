"""The route policy file: loads when right, refuses and names the line when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.policy.model import PolicyError, load_policy
from schemas.catalogue import load_catalogue

CAT = load_catalogue()
KINDS = {
    "amt": "authority",
    "ude": "university",
    "ihk-fosa": "chamber",
    "hwk": "chamber",
    "jobcenter": "jobcenter",
}

GOOD_ROUTE = """  - {requester: ude, performer: amt, type: residence.student, purpose: residence,
     legal_basis: "§ 16b AufenthG", retention_days: 730,
     fields: [person.family_name, payload.programme]}
"""


def write(tmp_path: Path, *routes: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text("version: 1\nroutes:\n" + "".join(routes), encoding="utf-8")
    return path


def test_shipped_policy_covers_the_catalogue() -> None:
    policy = load_policy(CAT)
    policy.check_partners(KINDS, CAT)
    covered = {r.type for r in policy.routes}
    assert covered == set(CAT.types)
    assert all(r.needs_consent for r in policy.routes if r.type == "counselling.talent-center")
    assert not any(r.needs_consent for r in policy.routes if r.purpose == "residence")


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (GOOD_ROUTE.replace("residence.student", "residence.unknown"), "unknown referral type"),
        (
            GOOD_ROUTE.replace("payload.programme", "payload.religion"),
            "unknown field 'payload.religion'",
        ),
        (GOOD_ROUTE.replace("person.family_name", "person.passport_no"), "unknown field"),
        (GOOD_ROUTE.replace("purpose: residence", "purpose: enforcement"), "purpose"),
        (GOOD_ROUTE.replace("730", "-1"), "retention_days"),
    ],
)
def test_bad_route_names_the_line(tmp_path: Path, route: str, message: str) -> None:
    path = write(tmp_path, GOOD_ROUTE, route)
    with pytest.raises(PolicyError, match=message) as err:
        load_policy(CAT, path)
    assert f"{path}:6:" in str(err.value), "the second route starts on line 6"


def test_unknown_partner_and_duplicates_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r":3: unknown partner 'uni-koeln'"):
        load_policy(
            CAT, write(tmp_path, GOOD_ROUTE.replace("requester: ude", "requester: uni-koeln"))
        ).check_partners(KINDS, CAT)
    with pytest.raises(PolicyError, match=r":6: .* repeats line 3"):
        load_policy(CAT, write(tmp_path, GOOD_ROUTE, GOOD_ROUTE))
    with pytest.raises(PolicyError, match="contradicts the catalogue"):
        load_policy(
            CAT, write(tmp_path, GOOD_ROUTE.replace("performer: amt", "performer: hwk"))
        ).check_partners(KINDS, CAT)
