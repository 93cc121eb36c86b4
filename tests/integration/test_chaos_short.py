"""The short chaos run (tests/chaos, docs/chaos.md): a few faults under a small load.

Each scenario runs on a fresh broker and database (postgres-restart: on a PostgreSQL server
of its own, started and crashed by the scenario) with the gateway, relay and consumers as
processes; it fails on any acknowledged referral lost, any duplicate effect at a partner,
any misrouted delivery, or (malformed records) dead-letter precision or recall below 1.

The ledger scenarios run the default ``hub up`` (SQLite, embedded broker) as a process,
SIGKILLed whole or its broker alone; they fail on any acknowledged referral lost, any
duplicate effect, any status change or timeline entry missing, or a broker process left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import postgres
from tests.chaos.ledger_scenarios import LEDGER_SHORT, run_ledger_scenario
from tests.chaos.run import (
    LEDGER_SHORT_SCENARIOS,
    OWN_DATABASE,
    SHORT,
    SHORT_SCENARIOS,
    run_scenario,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", SHORT_SCENARIOS)
def test_chaos_short(scenario: str, database_url: str, tmp_path: Path) -> None:
    _check(scenario, database_url, tmp_path)


@pytest.mark.parametrize("scenario", OWN_DATABASE)
def test_chaos_short_on_its_own_postgresql(scenario: str, tmp_path: Path) -> None:
    """Crashes a PostgreSQL server of its own (never the machine's shared one)."""
    why_not = postgres.available()
    if why_not:
        pytest.skip(why_not)
    _check(scenario, None, tmp_path)


def _check(scenario: str, database_url: str | None, tmp_path: Path) -> None:
    outcome = run_scenario(scenario, database_url=database_url, size=SHORT, workdir=tmp_path)
    summary = outcome.as_dict()
    assert outcome.acknowledged > 0, summary
    assert outcome.lost == 0, summary
    assert outcome.duplicate_effects == 0, summary
    assert outcome.misrouted == 0, summary
    if outcome.malformed_injected:
        assert outcome.malformed_precision == 1.0, summary
        assert outcome.malformed_recall == 1.0, summary
    assert outcome.settled, summary


@pytest.mark.parametrize("scenario", LEDGER_SHORT_SCENARIOS)
def test_chaos_ledger_short(scenario: str, tmp_path: Path) -> None:
    """The default hub up under load, killed three times: the partners' ledger is complete."""
    outcome = run_ledger_scenario(scenario, size=LEDGER_SHORT, workdir=tmp_path)
    summary = outcome.as_dict()
    assert sum(outcome.kills.values()) == LEDGER_SHORT.kills, summary
    assert outcome.acknowledged == LEDGER_SHORT.referrals, summary
    assert outcome.lost == 0, summary
    assert outcome.duplicate_effects == 0, summary
    assert outcome.missing_status_changes == 0, summary
    assert outcome.status_changes > 0, summary
    assert outcome.missing_timeline == 0, summary
    assert outcome.brokers_left == 0, summary
