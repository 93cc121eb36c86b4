"""Deadline clock definitions (design §10): data in the referral-type catalogue, never code.

A clock starts, stops and pauses on *triggers*. In YAML a trigger is written either as

- a plain string: lower-case kebab (``received``) names a lifecycle status, UPPER_SNAKE
  (``RECEIPT_CONFIRMED``) names a business status of the referral type; or
- a mapping ``{status: on-hold, business_status: ..., reason: awaiting-client-documents}``
  with at least one of ``status`` / ``business_status`` set.

A trigger matches a status change when every field it sets equals that change's field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.lifecycle import REASONS, TERMINAL, Status

if TYPE_CHECKING:
    from schemas.catalogue import Catalogue

Unit = Literal["days", "weeks", "months", "working_days"]

_BUSINESS = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SLUG = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


class Trigger(BaseModel):
    """A status change that starts, stops or pauses a clock."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str | None = None
    business_status: str | None = None
    reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            key = "business_status" if _BUSINESS.match(data) else "status"
            return {key: data}
        return data

    @model_validator(mode="after")
    def _something_set(self) -> Trigger:
        if self.status is None and self.business_status is None:
            raise ValueError("a trigger needs a status or a business_status")
        return self

    def matches(self, status: str, business_status: str | None, reason: str | None) -> bool:
        """Whether a status change with these codes fires this trigger."""
        return (
            (self.status is None or self.status == status)
            and (self.business_status is None or self.business_status == business_status)
            and (self.reason is None or self.reason == reason)
        )

    def label(self) -> str:
        """A short human-readable name, e.g. ``on-hold/awaiting-client-documents``."""
        parts = [p for p in (self.status, self.business_status, self.reason) if p]
        return "/".join(parts)


class Duration(BaseModel):
    """A period: calendar days, weeks, months (BGB § 188) or NRW working days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: int = Field(gt=0)
    unit: Unit


class ClockDefinition(BaseModel):
    """One deadline clock of a referral type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_SLUG)
    start_on: list[Trigger] = Field(min_length=1)
    stop_on: list[Trigger] = Field(min_length=1)
    paused_while: list[Trigger] = Field(default_factory=list)
    duration: Duration
    accelerated: Duration | None = None
    warn_before: Duration
    on_expiry_suggest: str | None = None
    # § 193 BGB moves a calendar period's end off weekends and holidays; whether it applies to
    # a given statutory period (e.g. a deemed consent) is a legal question, hence data.
    roll_to_working_day: bool = True

    def duration_for(self, *, accelerated: bool) -> Duration:
        """The accelerated duration when asked for and defined, else the normal one."""
        return self.accelerated if accelerated and self.accelerated else self.duration


def parse_clocks(type_id: str, raw: Sequence[Any]) -> list[ClockDefinition]:
    """Parse a type's clock entries; errors name the referral type and the clock."""
    clocks: list[ClockDefinition] = []
    for index, entry in enumerate(raw):
        if isinstance(entry, ClockDefinition):
            clocks.append(entry)
            continue
        name = entry.get("name", f"#{index}") if isinstance(entry, Mapping) else f"#{index}"
        try:
            clocks.append(ClockDefinition.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"type {type_id}: clock {name}: {problems}") from None
    return clocks


def validate_clocks(
    catalogue: Catalogue, clocks_by_type: Mapping[str, Sequence[Any]]
) -> dict[str, list[ClockDefinition]]:
    """Parse and check clock definitions against the catalogue; raise ValueError naming the entry.

    Refused: an unknown referral type, lifecycle status, reason or business status (one not in
    that type's ``business_statuses``); a missing or non-positive duration; a duplicate clock
    name; and a *cycle*. A cycle here means one trigger (equal after parsing) listed in two
    roles of the same clock: both in ``start_on`` and ``stop_on`` (the clock would stop the
    moment it starts), or in ``paused_while`` and in ``start_on`` or ``stop_on`` (a change
    could not say whether it pauses, starts or ends the clock).
    """
    parsed: dict[str, list[ClockDefinition]] = {}
    for type_id, raw in clocks_by_type.items():
        rtype = catalogue.types.get(type_id)
        if rtype is None:
            raise ValueError(f"clocks for unknown referral type {type_id}")
        clocks = parse_clocks(type_id, raw)
        names = [c.name for c in clocks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"type {type_id}: clock {twice[0]}: defined more than once")
        for clock in clocks:
            problem = _problem(clock, set(rtype.business_statuses))
            if problem:
                raise ValueError(f"type {type_id}: clock {clock.name}: {problem}")
        parsed[type_id] = clocks
    return parsed


def _problem(clock: ClockDefinition, business: set[str]) -> str | None:
    statuses = {s.value for s in Status}
    triggers = [*clock.start_on, *clock.stop_on, *clock.paused_while]
    for t in triggers:
        if t.status is not None and t.status not in statuses:
            return f"unknown status {t.status!r}"
        if t.business_status is not None and t.business_status not in business:
            return f"business status {t.business_status!r} not in this type's catalogue list"
        if t.reason is not None and t.reason not in _reasons(t.status):
            return f"unknown reason {t.reason!r} for status {t.status!r}"
    if clock.on_expiry_suggest is not None and clock.on_expiry_suggest not in business:
        return f"suggested business status {clock.on_expiry_suggest!r} not in the catalogue list"
    for t in clock.paused_while:
        if t.status is not None and Status(t.status) in TERMINAL:
            return f"terminal status {t.status!r} cannot pause a clock"
    return _cycle(clock)


def _reasons(status: str | None) -> frozenset[str]:
    if status is None:
        return frozenset().union(*REASONS.values())
    return REASONS.get(Status(status), frozenset())


def _cycle(clock: ClockDefinition) -> str | None:
    both = [t for t in clock.start_on if t in clock.stop_on]
    if both:
        return f"cycle: {both[0].label()!r} both starts and stops the clock"
    pausing = [t for t in clock.paused_while if t in clock.start_on or t in clock.stop_on]
    if pausing:
        return f"cycle: {pausing[0].label()!r} pauses the clock and also starts or stops it"
    return None
