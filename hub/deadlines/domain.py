"""The deadline clock as a pure function of a referral's status history (design §10).

Rules chosen here (the legal texts leave them to the implementation):

- **Order.** History is replayed by ``occurred_at``, then ``recorded_at``, then ``event_id``,
  so late or out-of-order deliveries give the same result as in-order ones. Points that
  occurred after ``now`` are not yet history and are ignored.
- **Precedence per point.** A correction (``entered-in-error``) voids the referral and stops
  every clock with reason ``entered-in-error``, even one that never started or had already
  stopped; then a stop trigger ends a started clock; a start trigger starts a clock that has
  not started (a clock starts once per referral, later start triggers do not restart it); a
  pause trigger pauses a running clock; any other point resumes a paused one.
- **Due time.** ``due_at`` is an instant: the end (24:00 Europe/Berlin) of the last day of the
  period, § 188 Abs. 1 BGB. ``warn_at`` is the end of the day ``warn_before`` ahead of that
  last day. ``time_left`` is ``due_at - now``; negative once expired.
- **Pausing** (the idea of § 209 BGB: the time of a suspension does not count). Each day from
  the local day a pause begins up to, not including, the local day it ends extends the
  period: in calendar days for day/week/month clocks (then § 193 BGB rolls the end to a
  working day) and in NRW working days for working-day clocks. While paused, the pause so far
  counts up to today. A pause trigger that arrives after the period already ran out does not
  revive the clock.
- **Compressed time** (integration tests only): with ``time_unit_seconds`` one clock day is
  that many real seconds; weeks are 7 days, months 30 days, working days plain days; no
  calendar, no § 193 roll, pauses extend the due instant by their exact length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal

from hub.deadlines.calendar import (
    BERLIN,
    NRWCalendar,
    add_duration,
    end_of_day,
    local_date,
    subtract_duration,
)
from schemas.clocks import ClockDefinition, Duration, Trigger
from schemas.lifecycle import Status

State = Literal["not-started", "running", "paused", "stopped", "expired"]

CORRECTION = "entered-in-error"

_CLOCK_DAYS = {"days": 1, "weeks": 7, "months": 30, "working_days": 1}


@dataclass(frozen=True, slots=True)
class StatusPoint:
    """One status change of a referral, as far as clocks care."""

    status: str
    business_status: str | None
    reason: str | None
    occurred_at: datetime
    recorded_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class ClockState:
    """Where one clock of one referral stands at ``now``."""

    name: str
    state: State
    started_at: datetime | None = None
    due_at: datetime | None = None
    warn_at: datetime | None = None
    paused_days: float = 0
    time_left: timedelta | None = None
    suggestion: str | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def due_date(self) -> date | None:
        """The last day of the period (the local day that ends at ``due_at``)."""
        if self.due_at is None:
            return None
        return (self.due_at.astimezone(BERLIN) - timedelta(microseconds=1)).date()


@dataclass(frozen=True, slots=True)
class _Timing:
    """How a clock turns a start and its pauses into a due instant."""

    definition: ClockDefinition
    duration: Duration
    calendar: NRWCalendar
    unit: timedelta | None

    def paused_days(self, pauses: Sequence[tuple[datetime, datetime]]) -> float:
        if self.unit is not None:
            return sum(((b - a) / self.unit for a, b in pauses), 0.0)
        if self.duration.unit == "working_days":
            days = self.calendar.working_days_between
            return sum(days(local_date(a), local_date(b)) for a, b in pauses)
        return sum((local_date(b) - local_date(a)).days for a, b in pauses)

    def due_at(self, started_at: datetime, pauses: Sequence[tuple[datetime, datetime]]) -> datetime:
        paused = self.paused_days(pauses)
        if self.unit is not None:
            return started_at + self.unit * (_clock_days(self.duration) + paused)
        if self.duration.unit == "working_days":
            extended = Duration(amount=self.duration.amount + int(paused), unit="working_days")
            last = add_duration(local_date(started_at), extended, calendar=self.calendar)
            return end_of_day(last)
        # Extend first, roll last: § 193 BGB looks at the day the (suspended) period ends.
        last = add_duration(
            local_date(started_at), self.duration, calendar=self.calendar, roll_to_working_day=False
        ) + timedelta(days=int(paused))
        if self.definition.roll_to_working_day:
            last = self.calendar.next_working_day(last)
        return end_of_day(last)

    def warn_at(self, due_at: datetime) -> datetime:
        warn = self.definition.warn_before
        if self.unit is not None:
            return due_at - self.unit * _clock_days(warn)
        last = (due_at.astimezone(BERLIN) - timedelta(microseconds=1)).date()
        return end_of_day(subtract_duration(last, warn, calendar=self.calendar))


@dataclass(slots=True)
class _Walk:
    """The clock's state while the history is replayed."""

    started_at: datetime | None = None
    paused_since: datetime | None = None
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    def stop(self, at: datetime, reason: str) -> None:
        self.resume(at)
        self.stopped_at, self.stop_reason = at, reason

    def resume(self, at: datetime) -> None:
        if self.paused_since is not None:
            self.pauses.append((self.paused_since, at))
            self.paused_since = None


def evaluate(
    definition: ClockDefinition,
    history: Sequence[StatusPoint],
    *,
    accelerated: bool,
    calendar: NRWCalendar,
    now: datetime,
    time_unit_seconds: float | None = None,
) -> ClockState:
    """The state of one clock at ``now`` from the referral's status history (any order)."""
    _require_aware(now, history)
    if time_unit_seconds is not None and time_unit_seconds <= 0:
        raise ValueError("time_unit_seconds must be positive")
    timing = _Timing(
        definition=definition,
        duration=definition.duration_for(accelerated=accelerated),
        calendar=calendar,
        unit=None if time_unit_seconds is None else timedelta(seconds=time_unit_seconds),
    )
    walk = _Walk()
    for point in sorted((p for p in history if p.occurred_at <= now), key=_order):
        _step(walk, point, timing)
    return _state(walk, timing, now)


def evaluate_all(
    definitions: Sequence[ClockDefinition],
    history: Sequence[StatusPoint],
    *,
    accelerated: bool,
    calendar: NRWCalendar,
    now: datetime,
    time_unit_seconds: float | None = None,
) -> list[ClockState]:
    """The state of every clock of a referral type, in catalogue order."""
    return [
        evaluate(
            d,
            history,
            accelerated=accelerated,
            calendar=calendar,
            now=now,
            time_unit_seconds=time_unit_seconds,
        )
        for d in definitions
    ]


def _order(point: StatusPoint) -> tuple[datetime, datetime, str]:
    return point.occurred_at, point.recorded_at, point.event_id


def _step(walk: _Walk, point: StatusPoint, timing: _Timing) -> None:
    clock = timing.definition
    at = point.occurred_at
    if point.status == Status.ENTERED_IN_ERROR:
        # A correction voids the whole referral, so it overrides an earlier regular stop too.
        if walk.stop_reason != CORRECTION:
            walk.stop(at, CORRECTION)
        return
    if walk.stopped_at is not None:
        return
    if walk.started_at is None:
        if _fires(clock.start_on, point):
            walk.started_at = at
        return
    stop = next((t for t in clock.stop_on if _matches(t, point)), None)
    if stop is not None:
        walk.stop(at, stop.label())
    elif not _fires(clock.paused_while, point):
        walk.resume(at)
    elif walk.paused_since is None and at < timing.due_at(walk.started_at, walk.pauses):
        walk.paused_since = at


def _state(walk: _Walk, timing: _Timing, now: datetime) -> ClockState:
    name = timing.definition.name
    if walk.started_at is None:
        if walk.stopped_at is not None:
            return ClockState(
                name, "stopped", stopped_at=walk.stopped_at, stop_reason=walk.stop_reason
            )
        return ClockState(name, "not-started")
    open_pause = [] if walk.paused_since is None else [(walk.paused_since, now)]
    pauses = [*walk.pauses, *open_pause]
    due_at = timing.due_at(walk.started_at, pauses)
    running = ClockState(
        name,
        "running",
        started_at=walk.started_at,
        due_at=due_at,
        warn_at=timing.warn_at(due_at),
        paused_days=timing.paused_days(pauses),
        time_left=due_at - now,
    )
    if walk.stopped_at is not None:
        return replace(
            running,
            state="stopped",
            time_left=None,
            stopped_at=walk.stopped_at,
            stop_reason=walk.stop_reason,
        )
    if walk.paused_since is not None:
        return replace(running, state="paused")
    if now >= due_at:
        return replace(running, state="expired", suggestion=timing.definition.on_expiry_suggest)
    return running


def _fires(triggers: Sequence[Trigger], point: StatusPoint) -> bool:
    return any(_matches(t, point) for t in triggers)


def _matches(trigger: Trigger, point: StatusPoint) -> bool:
    return trigger.matches(point.status, point.business_status, point.reason)


def _clock_days(duration: Duration) -> int:
    return duration.amount * _CLOCK_DAYS[duration.unit]


def _require_aware(now: datetime, history: Sequence[StatusPoint]) -> None:
    moments = [now, *(m for p in history for m in (p.occurred_at, p.recorded_at))]
    if any(m.tzinfo is None for m in moments):
        raise ValueError("clock evaluation needs timezone-aware datetimes")
