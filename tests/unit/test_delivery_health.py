"""A partner's delivery health says the truth: a backlog that never or no longer moves is
not "in Ordnung", even when no attempt has failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub.deliveries.health import STALE_AFTER, assess

NOW = datetime(2026, 12, 3, 13, 5, tzinfo=UTC)


def health(**state: object) -> tuple[str, str]:
    given = {"active": True, "paused": False, "failures": 0, "lag": 0, "last_success": None}
    h = assess(**(given | state), now=NOW)  # type: ignore[arg-type]
    return h.level, h.reason


def test_nothing_waiting_is_healthy_even_without_any_delivery_yet() -> None:
    assert health() == ("ok", "ops.health.ok")


def test_a_backlog_that_was_never_delivered_is_bad() -> None:
    assert health(lag=85) == ("bad", "ops.health.never")


def test_a_backlog_without_success_for_too_long_is_bad_and_says_how_long() -> None:
    h = assess(
        active=True,
        paused=False,
        failures=0,
        lag=3,
        last_success=NOW - STALE_AFTER - timedelta(minutes=12),
        now=NOW,
    )
    assert (h.level, h.reason, h.values["minutes"]) == ("bad", "ops.health.stale", 42)


def test_a_backlog_that_moves_is_fine() -> None:
    assert health(lag=3, last_success=NOW - timedelta(minutes=2)) == ("ok", "ops.health.moving")


def test_paused_is_bad_failures_warn_inactive_is_its_own_state() -> None:
    assert health(paused=True, failures=5, last_success=NOW) == ("bad", "ops.health.paused")
    assert health(failures=2, last_success=NOW) == ("warning", "ops.health.failing")
    assert health(active=False, lag=85) == ("inactive", "ops.health.inactive")
