"""Period arithmetic for deadlines (§§ 187-193 BGB) on the public holidays of NRW.

Holidays come from the maintained ``holidays`` library (``Germany(subdiv="NW")``, which
includes Fronleichnam and Allerheiligen for NRW), never from a hand-written list.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from schemas.clocks import Duration, Unit

#: Deadlines are kept in the local time of the place of performance (Duisburg).
BERLIN = ZoneInfo("Europe/Berlin")

_SATURDAY = 5


class NRWCalendar:
    """Working days in North Rhine-Westphalia: Monday to Friday except NRW public holidays."""

    def __init__(self) -> None:
        self._by_year: dict[int, holidays.HolidayBase] = {}

    def holidays_of(self, year: int) -> holidays.HolidayBase:
        """The NRW public holidays of one year (cached per year)."""
        if year not in self._by_year:
            self._by_year[year] = holidays.Germany(subdiv="NW", years=year)
        return self._by_year[year]

    def is_holiday(self, d: date) -> bool:
        """Whether ``d`` is a public holiday in NRW."""
        return d in self.holidays_of(d.year)

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is neither a Saturday, a Sunday nor an NRW public holiday."""
        return d.weekday() < _SATURDAY and not self.is_holiday(d)

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in the half-open range ``[a, b)``; negative when ``b`` is before ``a``."""
        if b < a:
            return -self.working_days_between(b, a)
        return sum(self.is_working_day(a + timedelta(days=i)) for i in range((b - a).days))

    def next_working_day(self, d: date) -> date:
        """``d`` itself if it is a working day, else the next working day (§ 193 BGB)."""
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d


def add_months(start: date, months: int) -> date:
    """``start`` moved by whole months, clamped to the end of a shorter month.

    § 188 Abs. 2 BGB: a period in months ends on the day of the last month that corresponds
    by its number to the start day; § 188 Abs. 3 BGB: if that month has no such day, the
    period ends on its last day. So 31 January + 1 month = 28 (29) February, 31 March +
    1 month = 30 April. ``months`` may be negative (used for warning times).
    """
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last = _stdlib_calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last))


def add_working_days(start: date, amount: int, *, calendar: NRWCalendar) -> date:
    """The date ``amount`` working days after ``start`` (before it when negative)."""
    step = 1 if amount >= 0 else -1
    d, left = start, abs(amount)
    while left:
        d += timedelta(days=step)
        if calendar.is_working_day(d):
            left -= 1
    return d


def add_duration(
    start: date, duration: Duration, *, calendar: NRWCalendar, roll_to_working_day: bool = True
) -> date:
    """The last day of a period of ``duration`` that begins with an event on ``start``.

    § 187 Abs. 1 BGB: the day of the event is not counted, so ``n`` days after 10 March end
    on 10 + n March; weeks are 7 days; months follow § 188 Abs. 2/3 (see ``add_months``);
    working days skip Saturdays, Sundays and NRW public holidays.

    § 193 BGB: when the last day of a calendar period (days, weeks, months) is a Saturday,
    Sunday or public holiday, the period ends on the next working day instead. That is on by
    default (``roll_to_working_day``); a working-day period always ends on a working day.
    """
    end = shift(start, duration.amount, duration.unit, calendar=calendar)
    if roll_to_working_day and duration.unit != "working_days":
        end = calendar.next_working_day(end)
    return end


def subtract_duration(end: date, duration: Duration, *, calendar: NRWCalendar) -> date:
    """The date ``duration`` before ``end`` (no § 193 roll: used for warnings, not deadlines)."""
    return shift(end, -duration.amount, duration.unit, calendar=calendar)


def shift(d: date, amount: int, unit: Unit, *, calendar: NRWCalendar) -> date:
    """``d`` moved by a signed ``amount`` of ``unit`` without any § 193 roll."""
    if unit == "months":
        return add_months(d, amount)
    if unit == "working_days":
        return add_working_days(d, amount, calendar=calendar)
    days = amount * 7 if unit == "weeks" else amount
    return d + timedelta(days=days)


def end_of_day(d: date) -> datetime:
    """The instant a day ends: 24:00 Europe/Berlin (§ 188 Abs. 1 BGB, "mit dem Ablauf")."""
    return datetime.combine(d + timedelta(days=1), time(0), tzinfo=BERLIN)


def local_date(moment: datetime) -> date:
    """The calendar day in Duisburg of an aware instant."""
    if moment.tzinfo is None:
        raise ValueError("deadline arithmetic needs timezone-aware datetimes")
    return moment.astimezone(BERLIN).date()
