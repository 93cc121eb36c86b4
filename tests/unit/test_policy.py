"""The route policy file: loads when right, refuses and names the line when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.policy.model import Party, PolicyError, load_policy
from hub.policy.record import render
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
     legal_basis: "§ 81 Abs. 1 AufenthG", basis_reason: "the student's application",
     retention_days: 730, fields: [person.family_name, payload.programme]}
"""
KIND_ROUTE = GOOD_ROUTE.replace("requester: ude", "requester: {kind: university}").replace(
    "person.family_name, ", "person.family_name, person.given_name, "
)
UDE, AMT = Party("ude", "university"), Party("amt", "authority")
ESSEN = Party("ude-essen", "university")


def write(tmp_path: Path, *routes: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text("version: 1\nroutes:\n" + "".join(routes), encoding="utf-8")
    return path


def test_shipped_policy_covers_the_catalogue() -> None:
    policy = load_policy(CAT)
    policy.check_partners(KINDS, CAT)
    covered = {r.type for r in policy.for_partners(KINDS)}
    assert covered == set(CAT.types)
    assert all(r.needs_consent for r in policy.grants if r.type == "counselling.talent-center")
    assert not any(r.needs_consent for r in policy.grants if r.purpose == "residence")


def test_the_shipped_policy_keeps_todays_flows() -> None:
    policy = load_policy(CAT)
    flows = {(r.requester, r.performer, r.type) for r in policy.for_partners(KINDS)}
    assert len(flows) == 16
    assert ("amt", "ihk-fosa", "recognition.assessment") in flows
    assert ("hwk", "amt", "recognition.adaptation") in flows
    assert ("jobcenter", "amt", "counselling.talent-center") in flows
    assert ("ude", "amt", "university.enrolment-confirmation") not in flows


def test_every_rule_says_why_and_wrong_bases_are_gone() -> None:
    policy = load_policy(CAT)
    assert all(r.basis_reason.strip() for r in policy.grants)
    bases = " ".join(r.legal_basis for r in policy.grants)
    assert "§ 82 AufenthG" not in bases and "§§ 67 ff. SGB X" not in bases
    to_jobcenter = policy.route(AMT, Party("jobcenter", "jobcenter"), "jobcenter.integration")
    assert to_jobcenter is not None and to_jobcenter.confirm
    assert all(r.confirm for r in policy.grants if r.needs_consent), "Art. 7(4) GDPR"


def test_a_new_partner_of_a_kind_gets_the_kind_routes() -> None:
    policy = load_policy(CAT)
    route = policy.route(ESSEN, AMT, "residence.student")
    assert route is not None and (route.requester, route.performer) == ("ude-essen", "amt")
    assert route.status_share("ude-essen") == route.status_to_requester
    assert policy.route(Party("ude-essen"), AMT, "residence.student") is None, "kind unknown"


def test_a_single_partner_rule_beats_the_kind_rule(tmp_path: Path) -> None:
    policy = load_policy(CAT, write(tmp_path, KIND_ROUTE, GOOD_ROUTE))
    ude, essen = (
        policy.route(UDE, AMT, "residence.student"),
        policy.route(ESSEN, AMT, "residence.student"),
    )
    assert ude is not None and essen is not None
    assert ude.fields == ("person.family_name", "payload.programme")
    assert essen.fields == ("person.family_name", "person.given_name", "payload.programme")
    assert ude.rule.endswith(":6") and essen.rule.endswith(":3")


def test_deny_excludes_one_partner_from_a_kind_rule(tmp_path: Path) -> None:
    deny = (
        "  - {requester: ude, performer: amt, type: residence.student,\n"
        '     deny: true, reason: "UDE sends through its own portal"}\n'
    )
    policy = load_policy(CAT, write(tmp_path, KIND_ROUTE, deny))
    assert policy.route(UDE, AMT, "residence.student") is None
    assert policy.route(ESSEN, AMT, "residence.student") is not None
    assert "UDE sends through its own portal" in render(policy, CAT)


def test_ambiguous_kind_rules_name_both_lines(tmp_path: Path) -> None:
    any_authority = KIND_ROUTE.replace("performer: amt", "performer: {kind: authority}")
    with pytest.raises(PolicyError, match=r":6: any university -> any authority .*repeats line 3"):
        load_policy(CAT, write(tmp_path, any_authority, any_authority.replace("given", "family")))
    ude_to_any = GOOD_ROUTE.replace("performer: amt", "performer: {kind: authority}")
    with pytest.raises(PolicyError, match=r":6: ude -> any authority .* line 3 .* specificity"):
        load_policy(CAT, write(tmp_path, KIND_ROUTE, ude_to_any))
    policy = load_policy(CAT, write(tmp_path, any_authority, ude_to_any))  # more specific
    assert policy.route(UDE, AMT, "residence.student") is not None


def test_unknown_or_wrong_kinds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r":3: requester: unknown partner kind 'school'"):
        load_policy(CAT, write(tmp_path, KIND_ROUTE.replace("kind: university", "kind: school")))
    with pytest.raises(PolicyError, match=r":3: .*contradicts the catalogue's requester kinds"):
        load_policy(CAT, write(tmp_path, KIND_ROUTE.replace("kind: university", "kind: chamber")))
    with pytest.raises(PolicyError, match="basis_reason"):
        load_policy(
            CAT,
            write(tmp_path, GOOD_ROUTE.replace('basis_reason: "the student\'s application",', "")),
        )


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
