"""The referral lifecycle: legal moves, who may make them, and the checks around them."""

from __future__ import annotations

import itertools

import pytest

from hub.errors import Forbidden, IllegalTransition, InvalidInput
from hub.referrals.domain import check_request, check_transition, roles_of
from schemas.catalogue import load_catalogue
from schemas.lifecycle import TERMINAL, TRANSITIONS, Role, Status, allowed_role
from schemas.messages import StatusChange

CAT = load_catalogue()
STUDENT = CAT.types["residence.student"]
PERFORMER = {Role.PERFORMER}
REQUESTER = {Role.REQUESTER}


def test_walkthrough_path_is_legal_for_the_performer() -> None:
    path = [Status.REQUESTED, Status.ACCEPTED, Status.IN_PROGRESS, Status.COMPLETED]
    for frm, to in itertools.pairwise(path):
        assert allowed_role(frm, to) == Role.PERFORMER


def test_terminal_states_only_allow_correction() -> None:
    for state in TERMINAL:
        targets = {to for (frm, to) in TRANSITIONS if frm == state}
        assert targets <= {Status.ENTERED_IN_ERROR}


def test_requester_cancels_and_performer_cannot() -> None:
    change = StatusChange(status=Status.CANCELLED, reason="withdrawn-by-client")
    check_transition(STUDENT, current=Status.IN_PROGRESS, change=change, roles=REQUESTER)
    with pytest.raises(IllegalTransition, match="only the requester"):
        check_transition(STUDENT, current=Status.IN_PROGRESS, change=change, roles=PERFORMER)


def test_requester_cannot_accept() -> None:
    with pytest.raises(IllegalTransition, match="only the performer"):
        check_transition(
            STUDENT,
            current=Status.REQUESTED,
            change=StatusChange(status=Status.ACCEPTED),
            roles=REQUESTER,
        )


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.REQUESTED, Status.COMPLETED),
        (Status.COMPLETED, Status.IN_PROGRESS),
        (Status.REJECTED, Status.ACCEPTED),
        (Status.ON_HOLD, Status.COMPLETED),
        (Status.REQUESTED, Status.REQUESTED),
    ],
)
def test_illegal_moves_are_refused(current: Status, target: Status) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(
            STUDENT,
            current=current,
            change=StatusChange(status=target),
            roles=PERFORMER | REQUESTER,
        )


def test_business_status_update_without_state_change() -> None:
    change = StatusChange(status=Status.IN_PROGRESS, business_status="DOCUMENTS_REQUESTED")
    check_transition(STUDENT, current=Status.IN_PROGRESS, change=change, roles=PERFORMER)
    with pytest.raises(IllegalTransition, match="already"):
        check_transition(
            STUDENT,
            current=Status.IN_PROGRESS,
            change=StatusChange(status=Status.IN_PROGRESS),
            roles=PERFORMER,
        )


def test_unknown_codes_are_named() -> None:
    with pytest.raises(InvalidInput, match="DECISION_FULL_EQUIVALENCE"):
        check_transition(
            STUDENT,
            current=Status.IN_PROGRESS,
            roles=PERFORMER,
            change=StatusChange(
                status=Status.COMPLETED, business_status="DECISION_FULL_EQUIVALENCE"
            ),
        )
    with pytest.raises(InvalidInput, match="reason"):
        check_transition(
            STUDENT,
            current=Status.IN_PROGRESS,
            roles=PERFORMER,
            change=StatusChange(status=Status.ON_HOLD, reason="not-eligible"),
        )
    with pytest.raises(InvalidInput, match="outcome"):
        check_transition(
            STUDENT,
            current=Status.ACCEPTED,
            roles=PERFORMER,
            change=StatusChange(status=Status.IN_PROGRESS, outcome="granted"),
        )


def test_roles_of_self_referral() -> None:
    assert roles_of("amt", requester="amt", performer="amt") == {Role.REQUESTER, Role.PERFORMER}
    assert roles_of("hwk", requester="amt", performer="ude") == set()


def test_request_rules_follow_the_catalogue() -> None:
    payload = {"programme": "M.Sc.", "semester": "2027S"}
    check_request(
        STUDENT,
        requester_kind="university",
        performer_id="amt",
        performer_kind="authority",
        payload=payload,
    )
    with pytest.raises(Forbidden, match="chamber"):
        check_request(
            STUDENT,
            requester_kind="chamber",
            performer_id="amt",
            performer_kind="authority",
            payload=payload,
        )
    with pytest.raises(InvalidInput, match="performer 'ude'"):
        check_request(
            STUDENT,
            requester_kind="university",
            performer_id="ude",
            performer_kind="university",
            payload=payload,
        )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"semester": "2027S"}, "payload.programme: field required"),
        ({"programme": "x", "semester": "SS27"}, "payload.semester"),
        ({"programme": "x", "admission_date": "15.02.2027"}, "payload.admission_date"),
        ({"programme": "x", "religion": "none"}, "payload.religion: field not allowed"),
    ],
)
def test_payload_problems_name_the_field(payload: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_request(
            STUDENT,
            requester_kind="university",
            performer_id="amt",
            performer_kind="authority",
            payload=payload,
        )
    assert fragment in err.value.detail


def test_catalogue_covers_domain_types() -> None:
    assert set(CAT.types) == {
        "recognition.assessment",
        "recognition.adaptation",
        "residence.student",
        "residence.skilled-worker",
        "university.enrolment-confirmation",
        "jobcenter.integration",
        "counselling.talent-center",
    }
    assert "BA_CONSENT_DEEMED" in CAT.types["residence.skilled-worker"].business_statuses
