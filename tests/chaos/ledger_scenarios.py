"""Ledger scenarios: the default ``hub up`` under load, SIGKILLed whole or its broker alone.

Each scenario starts ``hub up`` on a data directory of its own (tests.chaos.hubup), lets
the requester send referrals and both partners pull their inboxes (tests.chaos.ledger),
injects its faults at random moments of the load, drains the inboxes, stops ``hub up``
and measures against the ledger: what was answered 202 and never reached the performer,
what arrived twice, which status change or timeline entry is missing, and which broker
process outlived its ``hub up``. See docs/chaos.md.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from hub.timeline.models import TimelineEntry
from schemas.cloudevents import EventType
from tests.chaos.hubup import HubUp, end_processes
from tests.chaos.ledger import REQUESTER, Inboxes, Ledger, Requester, plan_for

#: How long ``hub up`` may take to run a new broker after its broker was killed.
BROKER_BACK_TIMEOUT = 30.0


@dataclass(frozen=True)
class LedgerSize:
    referrals: int
    rate: float  # referrals per second
    kills: int  # faults injected per scenario
    drain_timeout: float  # after the load, at most this long for everything owed to arrive
    quiet: float = 3.0  # and nothing new for this long (late repeats)


LEDGER_SHORT = LedgerSize(referrals=120, rate=8.0, kills=3, drain_timeout=45.0)
LEDGER_FULL = LedgerSize(referrals=150, rate=8.0, kills=3, drain_timeout=120.0)


@dataclass
class LedgerOutcome:
    acknowledged: int = 0
    refused: int = 0  # answered, but not 202
    unanswered: int = 0  # no answer when the load ended
    retried: int = 0  # referrals answered only after more than one try
    delivered: int = 0
    lost: int = 0
    duplicate_referrals: int = 0  # a second referral for one request (one key)
    duplicate_events: int = 0  # a second event id for one step in an inbox
    duplicate_timeline: int = 0  # a second timeline entry for one step
    redelivered_after_ack: int = 0  # handed out again after its ack was answered 204
    redelivered: int = 0  # one event id handed out again (its ack was lost): no effect
    status_changes: int = 0  # answered 200
    status_refused: int = 0
    missing_status_changes: int = 0  # answered 200, never in the requester's inbox
    timeline_expected: int = 0
    missing_timeline: int = 0
    brokers_left: int = 0
    planned_kills: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    restart_seconds: list[float] = field(default_factory=list)
    drain_seconds: float | None = None
    hub_exit: int | None = None
    lost_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duplicate_effects(self) -> int:
        return (
            self.duplicate_referrals
            + self.duplicate_events
            + self.duplicate_timeline
            + self.redelivered_after_ack
        )

    @property
    def passed(self) -> bool:
        missing = self.missing_status_changes + self.missing_timeline
        injected = sum(self.kills.values()) == self.planned_kills
        return (
            injected
            and self.acknowledged > 0
            and not (self.lost or self.duplicate_effects or missing or self.brokers_left)
        )

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "lost_ids"}
        d["lost_ids"] = self.lost_ids[:20]
        d["duplicate_effects"] = self.duplicate_effects
        d["passed"] = self.passed
        return d


@dataclass
class LedgerContext:
    hub: HubUp
    requester: Requester
    ledger: Ledger
    size: LedgerSize
    rng: random.Random
    outcome: LedgerOutcome
    up_since: float = field(default_factory=time.monotonic)

    def up_times(self) -> list[float]:
        """How long the hub runs before each fault: random, from 1.5 s (its consumers may
        not have joined their groups yet) to 0.8 of the load's length over the number of
        faults, so that every fault falls within the load (which a restart only delays)."""
        load = self.size.referrals / self.size.rate
        longest = max(2.0, min(6.0, 0.8 * load / self.size.kills))
        return [self.rng.uniform(1.5, longest) for _ in range(self.size.kills)]

    def wait_for_fault(self, up_for: float) -> bool:
        """Wait until the hub has run ``up_for`` s since it started or last recovered;
        False if the load ended first."""
        while time.monotonic() - self.up_since < up_for:
            if not self.requester.running:
                return False
            time.sleep(0.05)
        return self.requester.running

    def killed(self, what: str) -> None:
        self.outcome.kills[what] = self.outcome.kills.get(what, 0) + 1
        self.ledger.fault(f"{what} killed")

    def back(self, what: str) -> None:
        self.up_since = time.monotonic()
        self.ledger.fault(what)


LedgerScenario = Callable[[LedgerContext], None]


def hub_up_kill(ctx: LedgerContext) -> None:
    """SIGKILL the whole ``hub up`` at random moments of the load; start it again at once on
    the same data directory."""
    for up_for in ctx.up_times():
        if not ctx.wait_for_fault(up_for):
            ctx.outcome.notes.append("the load ended before every kill")
            return
        ctx.hub.kill()
        ctx.killed("hub-up")
        ctx.outcome.restart_seconds.append(round(ctx.hub.start(), 1))
        ctx.back("hub up serves again")


def hub_up_broker_kill(ctx: LedgerContext) -> None:
    """SIGKILL only ``hub up``'s broker at random moments of the load; ``hub up`` must run a
    new one by itself (this scenario never restarts ``hub up``)."""
    for up_for in ctx.up_times():
        if not ctx.wait_for_fault(up_for):
            ctx.outcome.notes.append("the load ended before every kill")
            return
        killed = ctx.hub.kill_broker()
        if killed is None:
            ctx.outcome.notes.append("hub up ran no broker to kill")
            return
        ctx.killed("broker")
        back = ctx.hub.wait_broker_back(killed, BROKER_BACK_TIMEOUT)
        if back is None:
            ctx.outcome.notes.append(
                f"hub up ran no new broker within {BROKER_BACK_TIMEOUT:.0f} s of a kill"
            )
            return
        ctx.outcome.restart_seconds.append(round(back, 1))
        ctx.back("broker answers again")


LEDGER_SCENARIOS: dict[str, LedgerScenario] = {
    "hub-up-kill": hub_up_kill,
    "hub-up-broker-kill": hub_up_broker_kill,
}


# ---------------------------------------------------------------- running one


def run_ledger_scenario(
    name: str, *, size: LedgerSize, workdir: Path, seed: int = 0
) -> LedgerOutcome:
    """Run one ledger scenario on a fresh ``hub up``; its outcome."""
    scenario_dir = workdir / name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    hub = HubUp(scenario_dir / "data", scenario_dir)
    outcome = LedgerOutcome(planned_kills=size.kills)
    ledger = Ledger()
    try:
        hub.start()
        _load_and_drain(name, hub, ledger, size, random.Random(seed), outcome)
    finally:
        outcome.hub_exit = hub.stop()
        left = hub.leftover_brokers()
        end_processes(left)
        hub.close()
        ledger.dump(scenario_dir / "ledger.json")
    outcome.brokers_left = len(left)
    if left:
        outcome.notes.append(f"brokers left (pid:port): {[f'{b.pid}:{b.port}' for b in left]}")
    measure(outcome, ledger, hub.database_url())
    return outcome


def _load_and_drain(
    name: str,
    hub: HubUp,
    ledger: Ledger,
    size: LedgerSize,
    rng: random.Random,
    outcome: LedgerOutcome,
) -> None:
    creds = hub.credentials()
    inboxes = Inboxes(hub.base_url, creds, ledger).start()
    requester = Requester(
        hub.base_url, creds[REQUESTER], ledger, count=size.referrals, rate=size.rate
    ).start()
    try:
        LEDGER_SCENARIOS[name](LedgerContext(hub, requester, ledger, size, rng, outcome))
        requester.wait(timeout=3 * size.referrals / size.rate + 60)
        took = drain(ledger, hub.database_url(), timeout=size.drain_timeout, quiet=size.quiet)
        outcome.drain_seconds = None if took is None else round(took, 1)
    finally:
        requester.close()
        inboxes.close()
    why: dict[str, int] = defaultdict(int)
    for client in [*requester.clients, inboxes.performer, inboxes.requester]:
        for reason, n in client.unanswered.items():
            why[reason] += n
    if why:
        outcome.notes.append(f"tries without an answer: {dict(why)}")


# ---------------------------------------------------------------- measuring


Step = tuple[str, str, str]  # referral id, event type, status


def expected_steps(ledger: Ledger) -> set[Step]:
    """A timeline entry per acknowledged referral and per status change answered 200."""
    with ledger.lock:
        steps = {
            (r.referral_id, EventType.REFERRAL_REQUESTED, "requested")
            for r in ledger.requests.values()
            if r.referral_id
        }
        changed = [step for step, code in ledger.changes.items() if code == 200]
    return steps | {(rid, EventType.REFERRAL_STATUS_CHANGED, s) for rid, s in changed}


def timeline_steps(database_url: str, referral_ids: set[str]) -> dict[Step, int]:
    """How many timeline entries each step of these referrals has."""
    engine = create_engine(database_url)
    out: dict[Step, int] = {}
    ids = sorted(referral_ids)
    t = TimelineEntry
    try:
        with engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = (
                    select(t.referral_id, t.event_type, t.status, func.count())
                    .where(t.referral_id.in_(ids[i : i + 500]))
                    .group_by(t.referral_id, t.event_type, t.status)
                )
                out.update({(str(r), e, s or ""): int(n) for r, e, s, n in conn.execute(q)})
    finally:
        engine.dispose()
    return out


def owed(ledger: Ledger, database_url: str) -> int:
    """What is still owed: referrals not at the performer, status changes planned and not
    made or not at the requester, timeline entries not written."""
    steps = expected_steps(ledger)
    timeline = timeline_steps(database_url, {s[0] for s in steps})
    with ledger.lock:
        arrived = set(ledger.requested)
        acked = {r.referral_id for r in ledger.requests.values() if r.referral_id}
        planned = {(rid, s) for rid in arrived for s in plan_for(rid)}
        not_made = planned - set(ledger.changes)
        made = {step for step, code in ledger.changes.items() if code == 200}
        untold = made - set(ledger.status_events)
    return len(acked - arrived) + len(not_made) + len(untold) + len(set(steps) - set(timeline))


def drain(ledger: Ledger, database_url: str, *, timeout: float, quiet: float) -> float | None:
    """Wait until nothing is owed and nothing new arrived for ``quiet`` s; seconds it took,
    None if something was still owed after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if owed(ledger, database_url) == 0:
            with ledger.lock:
                idle = time.monotonic() - ledger.last_receipt
            if idle >= quiet:
                return time.monotonic() - started
        time.sleep(1.0)
    return None


def measure(outcome: LedgerOutcome, ledger: Ledger, database_url: str) -> None:
    """Fill in the outcome from the ledger and the hub's timeline table."""
    acked = ledger.acked()
    with ledger.lock:
        requests = list(ledger.requests.values())
        requested = {rid: set(ids) for rid, ids in ledger.requested.items()}
        names = {name: set(ids) for name, ids in ledger.names.items()}
        changes = dict(ledger.changes)
        told = {step: set(ids) for step, ids in ledger.status_events.items()}
        receipts = dict(ledger.receipts)
        after_ack = set(ledger.after_ack)
    outcome.acknowledged = len(acked)
    outcome.refused = sum(1 for r in requests if r.status not in (None, 202))
    outcome.unanswered = sum(1 for r in requests if r.status is None)
    outcome.retried = sum(1 for r in requests if r.tries > 1)
    outcome.delivered = len(set(acked) & set(requested))
    lost = sorted(set(acked) - set(requested))
    outcome.lost, outcome.lost_ids = len(lost), lost
    outcome.duplicate_referrals = sum(len(ids) - 1 for ids in names.values())
    outcome.duplicate_events = sum(len(ids) - 1 for ids in [*requested.values(), *told.values()])
    outcome.redelivered_after_ack = len(after_ack)
    outcome.redelivered = len({e for e, n in receipts.items() if n > 1} - after_ack)
    made = {step for step, code in changes.items() if code == 200}
    outcome.status_changes = len(made)
    outcome.status_refused = len(changes) - len(made)
    outcome.missing_status_changes = len(made - set(told))
    steps = expected_steps(ledger)
    timeline = timeline_steps(database_url, {s[0] for s in steps})
    outcome.timeline_expected = len(steps)
    outcome.missing_timeline = len(steps - set(timeline))
    outcome.duplicate_timeline = sum(timeline[s] - 1 for s in steps if s in timeline)
    if set(told) - made:
        outcome.notes.append(f"{len(set(told) - made)} status changes told that were not made")
    if set(requested) - set(acked):
        outcome.notes.append(f"{len(set(requested) - set(acked))} referrals arrived unanswered")


LEDGER_COLUMNS = [
    ("scenario", 18),
    ("acked", 6),
    ("other", 6),
    ("no-ans", 6),
    ("retried", 7),
    ("lost", 5),
    ("dup", 4),
    ("again", 6),
    ("status", 7),
    ("miss-st", 8),
    ("miss-tl", 8),
    ("brokers", 8),
    ("kills", 14),
    ("drain s", 8),
    ("pass", 5),
]


def ledger_table(results: dict[str, LedgerOutcome]) -> str:
    """The ledger scenarios' figures, one line each (columns: docs/chaos.md)."""
    lines = [" ".join(f"{c:<{w}}" for c, w in LEDGER_COLUMNS)]
    for name, o in results.items():
        row = [
            name,
            o.acknowledged,
            o.refused,
            o.unanswered,
            o.retried,
            o.lost,
            o.duplicate_effects,
            o.redelivered,
            o.status_changes,
            o.missing_status_changes,
            f"{o.missing_timeline}/{o.timeline_expected}",
            o.brokers_left,
            ",".join(f"{k}:{v}" for k, v in sorted(o.kills.items())) or "-",
            "timeout" if o.drain_seconds is None else o.drain_seconds,
            "yes" if o.passed else "NO",
        ]
        cells = zip(row, LEDGER_COLUMNS, strict=True)
        lines.append(" ".join(f"{v!s:<{w}}" for v, (_, w) in cells))
    return "\n".join(lines)
