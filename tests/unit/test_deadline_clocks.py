"""Deadline clocks from the catalogue, replayed over status histories (hub.deadlines.domain)."""

from __future__ import annotations

import copy
import itertools
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.deadlines.calendar import BERLIN, NRWCalendar
from hub.deadlines.domain import ClockState, StatusPoint, evaluate, evaluate_all
from schemas.catalogue import Catalogue, load_catalogue
from schemas.clocks import ClockDefinition, validate_clocks

CAL = NRWCalendar()
CATALOGUE = load_catalogue()
_ids = itertools.count()


def clock(type_id: str, name: str) -> ClockDefinition:
    return next(c for c in CATALOGUE.types[type_id].clocks if c.name == name)


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=BERLIN)


def pt(
    status: str,
    business: str | None = None,
    *,
    on: str,
    reason: str | None = None,
    recorded: str | None = None,
) -> StatusPoint:
    occurred = at(on)
    return StatusPoint(
        status=status,
        business_status=business,
        reason=reason,
        occurred_at=occurred,
        recorded_at=at(recorded) if recorded else occurred + timedelta(seconds=1),
        event_id=f"evt-{next(_ids):04d}",
    )


def state(
    definition: ClockDefinition,
    history: list[StatusPoint],
    now: str,
    *,
    accelerated: bool = False,
    **kw: Any,
) -> ClockState:
    return evaluate(
        definition, history, accelerated=accelerated, calendar=CAL, now=at(now, 12), **kw
    )


RECEIPT = clock("recognition.assessment", "receipt-confirmation")
DECISION = clock("recognition.assessment", "decision")
BA = clock("residence.skilled-worker", "ba-consent")
FIRST = clock("counselling.talent-center", "first-appointment")

# A recognition file: sent, confirmed, complete on Friday 15 January 2027.
FILE = [
    pt("requested", on="2027-01-04"),
    pt("received", "RECEIPT_CONFIRMED", on="2027-01-08"),
    pt("accepted", "FILE_COMPLETE", on="2027-01-15"),
]


def test_every_catalogue_type_with_statutory_deadlines_has_its_clocks() -> None:
    names = {t.id: [c.name for c in t.clocks] for t in CATALOGUE.types.values()}
    assert names["recognition.assessment"] == ["receipt-confirmation", "decision"]
    assert names["residence.skilled-worker"] == ["ba-consent"]
    assert names["recognition.adaptation"] == ["follow-up-application"]
    assert names["residence.student"] == names["counselling.talent-center"] == ["first-appointment"]


def test_a_clock_does_not_start_before_its_trigger() -> None:
    s = state(DECISION, FILE[:2], "2027-01-10")
    assert (s.state, s.due_at, s.time_left) == ("not-started", None, None)


def test_decision_clock_runs_three_months_from_the_complete_file() -> None:
    s = state(DECISION, FILE, "2027-02-01")
    assert s.state == "running"
    assert s.started_at == at("2027-01-15")
    assert s.due_date == date(2027, 4, 15)
    # The deadline ends at 24:00 Duisburg time on the due date.
    assert s.due_at == datetime(2027, 4, 16, tzinfo=BERLIN)
    assert s.time_left == s.due_at - at("2027-02-01", 12)
    assert s.warn_at == datetime(2027, 4, 2, tzinfo=BERLIN)  # 14 days before


def test_accelerated_referrals_use_the_shorter_periods() -> None:
    history = [pt("requested", on="2027-03-01")]
    normal = state(RECEIPT, history, "2027-03-02")
    fast = state(RECEIPT, history, "2027-03-02", accelerated=True)
    assert normal.due_date == date(2027, 4, 1)
    assert fast.due_date == date(2027, 3, 15)
    assert state(DECISION, FILE, "2027-02-01", accelerated=True).due_date == date(2027, 3, 15)


def test_pause_while_documents_are_requested_moves_the_due_date() -> None:
    history = [
        *FILE,
        pt("in-progress", "DOCUMENTS_REQUESTED", on="2027-02-01"),
        pt("in-progress", "FILE_COMPLETE", on="2027-02-11"),
    ]
    paused = state(DECISION, history[:-1], "2027-02-05")
    assert paused.state == "paused"
    assert paused.paused_days == 4  # 1 to 5 February so far
    assert paused.due_date == date(2027, 4, 19)  # 15 April + 4 days
    resumed = state(DECISION, history, "2027-02-20")
    assert resumed.state == "running"
    assert resumed.paused_days == 10
    # 15 April + 10 days = Sunday 25 April; § 193 BGB moves the end to Monday 26 April.
    assert resumed.due_date == date(2027, 4, 26)


def test_on_hold_awaiting_client_documents_pauses_other_reasons_do_not() -> None:
    waiting = [*FILE, pt("on-hold", reason="awaiting-client-documents", on="2027-02-01")]
    third_party = [*FILE, pt("on-hold", reason="awaiting-third-party", on="2027-02-01")]
    assert state(DECISION, waiting, "2027-02-05").state == "paused"
    assert state(DECISION, third_party, "2027-02-05").state == "running"


def test_working_day_clock_pauses_in_working_days() -> None:
    history = [
        pt("requested", on="2027-03-22"),
        pt("on-hold", reason="awaiting-client-documents", on="2027-03-25"),
        pt("in-progress", on="2027-03-31"),
    ]
    definition = FIRST.model_copy(update={"paused_while": DECISION.paused_while})
    s = state(definition, history, "2027-04-01")
    # Paused Thu 25 to Wed 31 March: Thursday and Tuesday count, Easter does not.
    assert s.paused_days == 2
    # 10 working days after 22 March is 7 April (Easter skipped), + 2 working days.
    assert s.due_date == date(2027, 4, 9)


def test_a_pause_after_the_period_ran_out_does_not_revive_the_clock() -> None:
    history = [*FILE, pt("on-hold", reason="awaiting-client-documents", on="2027-05-03")]
    s = state(DECISION, history, "2027-05-10")
    assert s.state == "expired"
    assert s.paused_days == 0


def test_service_target_counts_nrw_working_days_and_warns_three_before() -> None:
    s = state(FIRST, [pt("requested", on="2027-05-24")], "2027-05-25")
    assert s.due_date == date(2027, 6, 8)  # Fronleichnam 27 May is not a working day
    assert s.warn_at == datetime(2027, 6, 4, tzinfo=BERLIN)  # end of Thursday 3 June
    booked = [
        pt("requested", on="2027-05-24"),
        pt("accepted", "APPOINTMENT_BOOKED", on="2027-05-28"),
    ]
    stopped = state(FIRST, booked, "2027-06-20")
    assert (stopped.state, stopped.stop_reason) == ("stopped", "accepted")


def test_ba_consent_expiry_suggests_deemed_consent_and_decides_nothing() -> None:
    history = [
        pt("requested", on="2027-02-22"),
        pt("in-progress", "BA_CONSENT_REQUESTED", on="2027-03-01"),
    ]
    before = state(BA, history, "2027-03-15")
    assert before.state == "running" and before.suggestion is None
    assert before.warn_at == datetime(2027, 3, 12, tzinfo=BERLIN)  # 2 working days ahead
    after = evaluate(
        BA, history, accelerated=False, calendar=CAL, now=datetime(2027, 3, 16, tzinfo=BERLIN)
    )
    assert after.state == "expired"
    assert after.suggestion == "BA_CONSENT_DEEMED"
    assert after.time_left == timedelta(0)
    granted = [*history, pt("in-progress", "BA_CONSENT_GRANTED", on="2027-03-10")]
    assert state(BA, granted, "2027-03-20").state == "stopped"
    assert state(BA, history, "2027-03-09", accelerated=True).state == "expired"


def test_correction_stops_every_clock_even_unstarted_ones() -> None:
    history = [*FILE, pt("entered-in-error", on="2027-02-01")]
    states = evaluate_all(
        [RECEIPT, DECISION, BA], history, accelerated=False, calendar=CAL, now=at("2027-06-01")
    )
    assert [(s.state, s.stop_reason) for s in states] == [("stopped", "entered-in-error")] * 3


def test_a_late_event_that_occurred_before_the_pause_changes_the_result() -> None:
    history = [*FILE, pt("in-progress", "DOCUMENTS_REQUESTED", on="2027-03-01")]
    assert state(DECISION, history, "2027-03-10").state == "paused"
    # The decision was taken on 20 February but reported only on 9 March.
    late = pt("completed", "DECISION_FULL_EQUIVALENCE", on="2027-02-20", recorded="2027-03-09")
    s = state(DECISION, [*history, late], "2027-03-10")
    assert (s.state, s.stopped_at, s.paused_days) == ("stopped", at("2027-02-20"), 0)


def test_events_that_occur_after_now_are_not_yet_history() -> None:
    history = [*FILE, pt("completed", on="2027-03-01")]
    assert state(DECISION, history, "2027-02-01").state == "running"


HISTORY = [
    *FILE,
    pt("in-progress", "DOCUMENTS_REQUESTED", on="2027-02-01"),
    pt("in-progress", "FILE_COMPLETE", on="2027-02-11"),
    pt("on-hold", reason="awaiting-client-documents", on="2027-03-01"),
    pt("on-hold", reason="awaiting-client-documents", on="2027-03-03"),
    pt("in-progress", on="2027-03-08"),
    # Same occurred_at: recorded_at and then the event id decide, in every order.
    pt("in-progress", "DOCUMENTS_REQUESTED", on="2027-04-01", recorded="2027-04-02"),
    pt("in-progress", "FILE_COMPLETE", on="2027-04-01", recorded="2027-04-03"),
]


@given(st.permutations(HISTORY), st.sampled_from(["2027-02-05", "2027-03-05", "2027-06-01"]))
def test_shuffled_history_gives_the_same_state(shuffled: list[StatusPoint], now: str) -> None:
    assert state(DECISION, shuffled, now) == state(DECISION, HISTORY, now)


def test_compressed_time_unit_for_integration_tests() -> None:
    start = datetime(2027, 3, 1, 10, tzinfo=BERLIN)
    requested = StatusPoint("in-progress", "BA_CONSENT_REQUESTED", None, start, start, "e1")
    s = evaluate(
        BA,
        [requested],
        accelerated=False,
        calendar=CAL,
        now=start + timedelta(seconds=5),
        time_unit_seconds=1.0,
    )
    assert s.due_at == start + timedelta(seconds=14)  # 2 weeks = 14 clock days
    assert s.warn_at == start + timedelta(seconds=12)  # 2 working days = 2 plain days
    expired = evaluate(
        BA, [requested], accelerated=False, calendar=CAL, now=s.due_at, time_unit_seconds=1.0
    )
    assert expired.state == "expired" and expired.suggestion == "BA_CONSENT_DEEMED"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(BA, [], accelerated=False, calendar=CAL, now=datetime(2027, 1, 1))


def raw_catalogue() -> dict[str, Any]:
    text = resources.files("schemas").joinpath("catalogue/referral-types.yaml").read_text("utf-8")
    return copy.deepcopy(yaml.safe_load(text))


def decision_entry(raw: dict[str, Any]) -> dict[str, Any]:
    clocks: list[dict[str, Any]] = raw["types"]["recognition.assessment"]["clocks"]
    return next(c for c in clocks if c["name"] == "decision")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_on": ["recieved"]}, "unknown status 'recieved'"),
        ({"stop_on": ["BA_CONSENT_GRANTED"]}, "'BA_CONSENT_GRANTED' not in this type's"),
        ({"duration": {"amount": -3, "unit": "months"}}, "duration.amount"),
        ({"duration": None}, "duration"),
        ({"duration": {"amount": 3, "unit": "fortnights"}}, "duration.unit"),
        ({"stop_on": ["completed", "FILE_COMPLETE"]}, "cycle: 'FILE_COMPLETE' both starts"),
        ({"paused_while": ["completed"]}, "terminal status 'completed' cannot pause"),
        ({"paused_while": [{"business_status": "FILE_COMPLETE"}]}, "cycle: 'FILE_COMPLETE' pauses"),
        ({"paused_while": [{"status": "on-hold", "reason": "lunch"}]}, "unknown reason 'lunch'"),
    ],
)
def test_bad_clock_definitions_refuse_to_load_naming_the_entry(
    change: dict[str, Any], message: str
) -> None:
    raw = raw_catalogue()
    entry = decision_entry(raw)
    entry.update(change)
    if entry.get("duration") is None:
        del entry["duration"]
    with pytest.raises(ValueError, match=r"type recognition\.assessment: clock decision: ") as err:
        Catalogue.model_validate(raw)
    assert message in str(err.value)


def test_validate_clocks_checks_definitions_given_apart_from_the_catalogue() -> None:
    good = {
        "name": "x",
        "start_on": ["requested"],
        "stop_on": ["accepted"],
        "duration": {"amount": 1, "unit": "days"},
        "warn_before": {"amount": 1, "unit": "days"},
    }
    parsed = validate_clocks(CATALOGUE, {"counselling.talent-center": [good]})
    assert parsed["counselling.talent-center"][0].name == "x"
    with pytest.raises(ValueError, match="clock x: defined more than once"):
        validate_clocks(CATALOGUE, {"counselling.talent-center": [good, good]})
    with pytest.raises(ValueError, match="unknown referral type nope"):
        validate_clocks(CATALOGUE, {"nope": [good]})
