"""Whether deliveries to a partner are healthy, and why not, in words staff can act on.

A partner is healthy only when nothing waits for it or deliveries are still arriving:
a backlog with no success ever, or none for ``STALE_AFTER``, means the partner is not being
reached even when no attempt has failed yet (a pull partner that stopped fetching).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

#: A backlog older than this without a single success is a problem, not a queue.
STALE_AFTER = timedelta(minutes=30)

Level = Literal["ok", "warning", "bad", "inactive"]


@dataclass(frozen=True)
class Health:
    """A level and the reason: an ``ops.health.*`` word key and its values."""

    level: Level
    reason: str
    values: dict[str, object] = field(default_factory=dict)


def assess(
    *,
    active: bool,
    paused: bool,
    failures: int,
    lag: int,
    last_success: datetime | None,
    now: datetime,
) -> Health:
    """The delivery health of one partner from its recorded state and its backlog."""
    if not active:
        return Health("inactive", "ops.health.inactive")
    if paused:
        return Health("bad", "ops.health.paused", {"failures": failures})
    if lag and last_success is None:
        return Health("bad", "ops.health.never", {"lag": lag})
    if lag and last_success is not None and now - last_success > STALE_AFTER:
        minutes = int((now - last_success).total_seconds() // 60)
        return Health("bad", "ops.health.stale", {"lag": lag, "minutes": minutes})
    if failures:
        return Health("warning", "ops.health.failing", {"failures": failures})
    if lag:
        return Health("ok", "ops.health.moving", {"lag": lag})
    return Health("ok", "ops.health.ok")
