"""Period arithmetic (§§ 187-193 BGB) and the NRW working-day calendar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from hub.deadlines.calendar import (
    BERLIN,
    NRWCalendar,
    add_duration,
    add_months,
    end_of_day,
    subtract_duration,
)
from schemas.clocks import Duration

CAL = NRWCalendar()


def period(amount: int, unit: Any) -> Duration:
    return Duration(amount=amount, unit=unit)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2027, 1, 31), 1, date(2027, 2, 28)),  # no 31 February: last day (§ 188 Abs. 3)
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2027, 3, 31), 1, date(2027, 4, 30)),
        (date(2027, 1, 15), 3, date(2027, 4, 15)),  # same day number (§ 188 Abs. 2)
        (date(2027, 11, 30), 3, date(2028, 2, 29)),  # across the year end
        (date(2027, 2, 28), 1, date(2027, 3, 28)),  # not "end of month sticks"
        (date(2027, 6, 1), 60, date(2032, 6, 1)),  # five years as 60 months
        (date(2027, 3, 31), -1, date(2027, 2, 28)),  # backwards, for warnings
    ],
)
def test_month_arithmetic_follows_bgb_188(start: date, months: int, end: date) -> None:
    assert add_months(start, months) == end
    if months > 0:
        plain = add_duration(
            start, period(months, "months"), calendar=CAL, roll_to_working_day=False
        )
        assert plain == end


def test_days_do_not_count_the_day_of_the_event_and_weeks_are_seven_days() -> None:
    # § 187 Abs. 1 BGB: a 10-day period starting with an event on 10 March ends on 20 March.
    assert add_duration(date(2027, 3, 10), period(10, "days"), calendar=CAL) == date(2027, 3, 22)
    plain = add_duration(
        date(2027, 3, 10), period(10, "days"), calendar=CAL, roll_to_working_day=False
    )
    assert plain == date(2027, 3, 20)  # a Saturday, rolled to Monday 22 above
    assert add_duration(date(2027, 3, 1), period(2, "weeks"), calendar=CAL) == date(2027, 3, 15)


def test_nrw_holidays_come_from_the_library_including_fronleichnam_and_allerheiligen() -> None:
    assert CAL.is_holiday(date(2027, 5, 27))  # Fronleichnam, a holiday in NRW, not in Berlin
    assert CAL.is_holiday(date(2027, 11, 1))  # Allerheiligen
    assert CAL.is_holiday(date(2027, 3, 26))  # Good Friday
    assert not CAL.is_holiday(date(2027, 10, 31))  # Reformationstag is not one in NRW
    assert not CAL.is_working_day(date(2027, 3, 27))  # Saturday
    assert CAL.is_working_day(date(2027, 3, 30))


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (date(2027, 3, 22), date(2027, 4, 7), "Good Friday and Easter Monday skipped"),
        (date(2027, 5, 24), date(2027, 6, 8), "Fronleichnam (27 May) skipped"),
        (date(2027, 10, 29), date(2027, 11, 15), "Allerheiligen (Monday 1 Nov) skipped"),
        (date(2027, 3, 1), date(2027, 3, 15), "two plain weeks"),
    ],
)
def test_ten_working_days_skip_weekends_and_nrw_holidays(start: date, end: date, why: str) -> None:
    assert add_duration(start, period(10, "working_days"), calendar=CAL) == end, why


def test_working_days_between_is_half_open_and_signed() -> None:
    # [Thu 25, Wed 31 March 2027): Thursday and Tuesday; Good Friday and Easter Monday are not.
    assert CAL.working_days_between(date(2027, 3, 25), date(2027, 3, 31)) == 2
    assert CAL.working_days_between(date(2027, 3, 31), date(2027, 3, 25)) == -2
    assert CAL.working_days_between(date(2027, 3, 25), date(2027, 3, 25)) == 0


def test_bgb_193_rolls_a_calendar_period_off_weekends_and_holidays() -> None:
    one_month = period(1, "months")
    # 28 February 2027 is a Sunday: the period ends on Monday 1 March.
    assert add_duration(date(2027, 1, 31), one_month, calendar=CAL) == date(2027, 3, 1)
    # 1 November 2027 (Allerheiligen) is a Monday: the period ends on Tuesday 2 November.
    assert add_duration(date(2027, 10, 1), one_month, calendar=CAL) == date(2027, 11, 2)
    # Good Friday 26 March, weekend, Easter Monday 29 March 2027: ends Tuesday 30 March.
    assert add_duration(date(2027, 3, 12), period(2, "weeks"), calendar=CAL) == date(2027, 3, 30)
    plain = add_duration(date(2027, 1, 31), one_month, calendar=CAL, roll_to_working_day=False)
    assert plain == date(2027, 2, 28)


def test_subtract_duration_goes_back_without_rolling() -> None:
    assert subtract_duration(date(2027, 3, 15), period(2, "working_days"), calendar=CAL) == date(
        2027, 3, 11
    )
    assert subtract_duration(date(2027, 4, 1), period(7, "days"), calendar=CAL) == date(2027, 3, 25)


def test_a_day_ends_at_midnight_in_duisburg() -> None:
    assert end_of_day(date(2027, 3, 27)) == datetime(2027, 3, 28, tzinfo=BERLIN)
    # The night summer time starts, the day still ends at local midnight.
    assert end_of_day(date(2027, 3, 28)).utcoffset() is not None
    assert end_of_day(date(2027, 3, 28)).isoformat() == "2027-03-29T00:00:00+02:00"
