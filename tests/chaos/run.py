"""Fault-injection runner: each scenario injects its fault while referrals are being created,
lets the system settle, and checks the ledger of acknowledged referrals against what the
partners received.

    python -m tests.chaos.run [--short] [--scenario NAME ...] [--json out.json]
        [--database-url URL] [--kills N]

Passes only with nothing lost, no duplicate effect at a partner and nothing misrouted (and,
for the malformed scenario, dead-letter precision and recall of 1). The ledger scenarios
(tests.chaos.ledger_scenarios) run the default ``hub up`` instead; they pass only with
nothing lost, no duplicate effect, no status change or timeline entry missing and no broker
process left over. See docs/chaos.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chaos.harness import (
    CONSUMERS,
    Ledger,
    Load,
    Outcome,
    Stack,
    inject_malformed,
    measure,
    settle,
    wait_until,
)
from tests.chaos.ledger_scenarios import (
    LEDGER_FULL,
    LEDGER_SCENARIOS,
    LEDGER_SHORT,
    LedgerOutcome,
    ledger_table,
    run_ledger_scenario,
)
from tests.chaos.postgres import PrivatePostgres, available


@dataclass(frozen=True)
class Size:
    people: int
    per_person: int
    rate: float  # referrals per second, all load threads together
    settle_timeout: float

    @property
    def referrals(self) -> int:
        return self.people * self.per_person


SHORT = Size(people=40, per_person=2, rate=10.0, settle_timeout=45.0)
FULL = Size(people=150, per_person=3, rate=15.0, settle_timeout=90.0)


@dataclass
class Context:
    stack: Stack
    size: Size
    rng: random.Random
    ledger: Ledger
    fault_end: float = 0.0
    injected: list[str] | None = None
    postgres: PrivatePostgres | None = None

    def load(self, fraction: float = 1.0, tag: str = "") -> Load:
        people = max(3, round(self.size.people * fraction))
        return Load(
            self.stack,
            people=people,
            per_person=self.size.per_person,
            rate=self.size.rate,
            ledger=self.ledger,
            tag=tag,
        ).start()


Scenario = Callable[[Context], Load]


def baseline(ctx: Context) -> Load:
    """No fault: the reference figures."""
    load = ctx.load()
    load.wait()
    ctx.fault_end = time.monotonic()
    return load


def broker_pause(ctx: Context) -> Load:
    """SIGSTOP the broker for a while in the middle of the load, then SIGCONT."""
    load = ctx.load()
    time.sleep(_duration(ctx) * 0.25)
    ctx.stack.broker.pause()
    try:
        time.sleep(min(8.0, _duration(ctx) * 0.4))
    finally:
        ctx.stack.broker.resume()
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def broker_restart(ctx: Context) -> Load:
    """Kill the in-memory broker while it holds events published and not consumed yet, load
    on while it is down, start it again (empty): the hub must publish again what it owes."""
    stack = ctx.stack
    warm = ctx.load(0.2, tag="w")
    warm.wait()
    took = settle(stack, ctx.ledger, since=time.monotonic(), timeout=ctx.size.settle_timeout)
    if took is None:
        raise RuntimeError("broker-restart: the warm-up was not delivered before the kill")
    wait_until(lambda: stack.unpublished() == 0, 60, "outbox empty before the kill")
    time.sleep(1.0)  # the last delivered-events are consumed by the timeline too
    # The consumers are down while the next part is published: the broker alone holds it.
    for role in CONSUMERS:
        stack.kill(role)
    ctx.load(0.2, tag="p").wait()
    wait_until(lambda: stack.unpublished() == 0, 60, "published, unconsumed, before the kill")
    stack.broker.kill()
    for role in CONSUMERS:
        stack.spawn(role)
    load = ctx.load(0.6)
    time.sleep(min(6.0, _duration(ctx, 0.6) * 0.4))
    stack.broker.start()
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def consumer_kill(ctx: Context) -> Load:
    """SIGKILL the router or the delivery process at random moments, start it again."""
    load = ctx.load()
    _kill_repeatedly(ctx, load, ["router", "delivery"], (2.0, 5.0))
    load.wait()
    return load


def relay_kill(ctx: Context) -> Load:
    """SIGKILL the relay at random moments while it publishes, start it again at once."""
    load = ctx.load()
    _kill_repeatedly(ctx, load, ["relay"], (1.5, 3.5))
    load.wait()
    return load


def gateway_kill(ctx: Context) -> Load:
    """SIGKILL the gateway right after it answered a request (others are in flight)."""
    load = ctx.load()
    stack, ledger = ctx.stack, ctx.ledger
    while load.running:
        time.sleep(ctx.rng.uniform(0.8, 1.5))
        with ledger.answered:
            seen = ledger.answers

            def answered_since(seen: int = seen) -> bool:
                return ledger.answers > seen or not load.running

            ledger.answered.wait_for(answered_since, 5)
            if not load.running:
                break
            stack.kill("gateway")  # under the lock: no answer is counted meanwhile
        time.sleep(0.5)
        stack.spawn("gateway")
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def partner_faults(ctx: Context) -> Load:
    """One partner slow (0.5 s a delivery, under the hub's 2 s read timeout: slower than the
    load, so a backlog builds), one answering 500 for a
    while, one rejecting with 400 for a while (permanent: dead-lettered, not lost)."""
    load = ctx.load()
    third = _duration(ctx) / 3
    time.sleep(third * 0.5)
    ctx.stack.set_mode("amt", "slow", 0.5)
    ctx.stack.set_mode("jobcenter", "error500")
    ctx.stack.set_mode("ihk-fosa", "reject400")
    time.sleep(third)
    ctx.stack.set_mode("ihk-fosa", "ok")
    ctx.stack.set_mode("jobcenter", "ok")
    time.sleep(third * 0.5)
    ctx.stack.set_mode("amt", "ok")
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def partner_down(ctx: Context) -> Load:
    """One partner's system stops listening (connections refused) in the middle of the load and
    comes back on the same address: its deliveries wait, the others keep flowing."""
    load = ctx.load()
    time.sleep(_duration(ctx) * 0.25)
    server = ctx.stack.sims["jobcenter"].server
    server.down()
    try:
        time.sleep(min(10.0, _duration(ctx) * 0.4))
    finally:
        server.up()
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def malformed(ctx: Context) -> Load:
    """1 % malformed records written straight into hub.events.v1 while the load runs."""
    load = ctx.load()
    count = max(4, ctx.size.referrals // 100)
    ctx.injected = inject_malformed(ctx.stack, count, spread_seconds=_duration(ctx) * 0.8)
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


def postgres_restart(ctx: Context) -> Load:
    """Crash the database server in the middle of the load (no checkpoint), start it again
    after a while: requests in between are refused (not acknowledged), nothing acknowledged
    may be lost, and every process must reconnect by itself."""
    assert ctx.postgres is not None, "postgres-restart runs on its own PostgreSQL server"
    load = ctx.load()
    time.sleep(_duration(ctx) * 0.25)
    ctx.postgres.crash()
    try:
        time.sleep(min(6.0, _duration(ctx) * 0.4))
    finally:
        ctx.postgres.start()
    ctx.fault_end = time.monotonic()
    load.wait()
    return load


SCENARIOS: dict[str, Scenario] = {
    "baseline": baseline,
    "broker-pause": broker_pause,
    "broker-restart": broker_restart,
    "consumer-kill": consumer_kill,
    "relay-kill": relay_kill,
    "gateway-kill": gateway_kill,
    "partner-faults": partner_faults,
    "partner-down": partner_down,
    "malformed": malformed,
    "postgres-restart": postgres_restart,
}
#: What CI runs (see tests/integration/test_chaos_short.py), on SQLite and on PostgreSQL.
SHORT_SCENARIOS = ("broker-restart", "consumer-kill", "relay-kill", "gateway-kill", "malformed")
#: Scenarios on a PostgreSQL server of their own (tests.chaos.postgres), whatever the database.
OWN_DATABASE = ("postgres-restart",)
#: Ledger scenarios CI runs (the default hub up: SQLite, embedded broker).
LEDGER_SHORT_SCENARIOS = ("hub-up-kill", "hub-up-broker-kill")


def _duration(ctx: Context, fraction: float = 1.0) -> float:
    return max(3.0, ctx.size.referrals * fraction / ctx.size.rate)


def _kill_repeatedly(
    ctx: Context, load: Load, roles: list[str], after: tuple[float, float]
) -> None:
    while load.running:
        time.sleep(ctx.rng.uniform(*after))
        role = ctx.rng.choice(roles)
        ctx.stack.kill(role)
        ctx.stack.spawn(role)
    ctx.fault_end = time.monotonic()


def run_scenario(
    name: str, *, database_url: str | None, size: Size, workdir: Path, seed: int = 0
) -> Outcome:
    """Run one scenario on a fresh stack; its outcome."""
    scenario_dir = workdir / name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as scope:
        postgres = None
        if name in OWN_DATABASE:
            postgres = PrivatePostgres().init()
            scope.callback(postgres.close)
            postgres.start()
            database_url = postgres.url
        stack = Stack(database_url or f"sqlite:///{scenario_dir / 'hub.db'}", scenario_dir)
        scope.callback(stack.close)
        return _run(name, stack, size, seed, postgres)


def _run(
    name: str, stack: Stack, size: Size, seed: int, postgres: PrivatePostgres | None
) -> Outcome:
    """Start everything, run the scenario, settle, measure."""
    stack.start_all()
    ctx = Context(stack, size, random.Random(seed), Ledger(), postgres=postgres)
    load = SCENARIOS[name](ctx)
    since = max(ctx.fault_end, load.ended)
    took = settle(
        stack, ctx.ledger, since=since, timeout=size.settle_timeout, injected=ctx.injected
    )
    outcome = measure(stack, ctx.ledger, injected=ctx.injected)
    outcome.recovery_seconds = None if took is None else round(took, 1)
    outcome.settled = took is not None
    dead = [r for r in ("relay", *CONSUMERS) if stack.procs[r].poll() is not None]
    if dead:
        outcome.notes.append(f"processes not running at the end: {dead}")
    return outcome


COLUMNS = [
    ("scenario", 16),
    ("acked", 6),
    ("no-ans", 6),
    ("deliv", 6),
    ("dlq", 4),
    ("lost", 5),
    ("dup", 4),
    ("resent", 6),
    ("misr", 5),
    ("order", 6),
    ("mal P/R", 9),
    ("recov s", 8),
    ("kills", 30),
    ("pass", 5),
]


def table(results: dict[str, Outcome]) -> str:
    lines = [" ".join(f"{c:<{w}}" for c, w in COLUMNS)]
    for name, o in results.items():
        mal = (
            f"{o.malformed_precision:.2f}/{o.malformed_recall:.2f}"
            if o.malformed_precision is not None and o.malformed_recall is not None
            else "-"
        )
        row = [
            name,
            o.acknowledged,
            o.unanswered + o.refused,
            o.delivered,
            o.dead_lettered,
            o.lost,
            o.duplicate_effects,
            o.redelivered,
            o.misrouted,
            o.order_violations,
            mal,
            "timeout" if o.recovery_seconds is None else o.recovery_seconds,
            ",".join(f"{k}:{v}" for k, v in sorted(o.kills.items())) or "-",
            "yes" if o.passed else "NO",
        ]
        lines.append(" ".join(f"{v!s:<{w}}" for v, (_, w) in zip(row, COLUMNS, strict=True)))
    return "\n".join(lines)


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: through the ``finally`` blocks that stop what it
    started. ``hub up`` runs in a session of its own, so nothing else would stop it."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--short", action="store_true", help="small load, CI's scenarios")
    parser.add_argument("--scenario", action="append", choices=[*SCENARIOS, *LEDGER_SCENARIOS])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file per scenario; PostgreSQL: a fresh schema each "
        "(ledger scenarios always run the default hub up, on SQLite)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, help="faults per ledger scenario (default 3)")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    size = SHORT if args.short else FULL
    ledger_size = LEDGER_SHORT if args.short else LEDGER_FULL
    if args.kills is not None:
        ledger_size = dataclasses.replace(ledger_size, kills=args.kills)
    short = [*SHORT_SCENARIOS, *LEDGER_SHORT_SCENARIOS]
    names = args.scenario or (short if args.short else [*SCENARIOS, *LEDGER_SCENARIOS])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hub-chaos-"))
    results: dict[str, Outcome] = {}
    ledgers: dict[str, LedgerOutcome] = {}
    seconds: dict[str, float] = {}
    skipped = {n: why for n in names if n in OWN_DATABASE and (why := available())}
    for name in [n for n in names if n not in skipped]:
        started = time.monotonic()
        print(f"[chaos] {name} ...", file=sys.stderr, flush=True)
        outcome: Outcome | LedgerOutcome
        if name in LEDGER_SCENARIOS:
            outcome = ledgers[name] = run_ledger_scenario(
                name, size=ledger_size, workdir=workdir, seed=args.seed
            )
        else:
            outcome = results[name] = _run_stack_scenario(name, args, size, workdir)
        seconds[name] = round(time.monotonic() - started, 1)
        print(
            f"[chaos] {name}: {'pass' if outcome.passed else 'FAIL'} "
            f"in {seconds[name]:.0f} s; notes: {outcome.notes}",
            file=sys.stderr,
            flush=True,
        )
    _report(results, ledgers, skipped, workdir)
    if args.json:
        doc: dict[str, Any] = {
            "size": size.__dict__,
            "ledger_size": ledger_size.__dict__,
            "database": args.database_url or "sqlite",
            "results": {n: o.as_dict() for n, o in results.items()},
            "ledger_results": {n: o.as_dict() for n, o in ledgers.items()},
            "seconds": seconds,
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(doc, indent=2))
    passed = [o.passed for o in results.values()] + [o.passed for o in ledgers.values()]
    return 0 if all(passed) else 1


def _run_stack_scenario(name: str, args: argparse.Namespace, size: Size, workdir: Path) -> Outcome:
    with contextlib.ExitStack() as scope:
        url = args.database_url
        if url and url.startswith("postgresql") and name not in OWN_DATABASE:
            from tests.conftest import _pg_schema  # a fresh schema per scenario

            url = scope.enter_context(contextlib.contextmanager(_pg_schema)(url))
        return run_scenario(name, database_url=url, size=size, workdir=workdir, seed=args.seed)


def _report(
    results: dict[str, Outcome],
    ledgers: dict[str, LedgerOutcome],
    skipped: dict[str, str],
    workdir: Path,
) -> None:
    if results:
        print(table(results))
    if ledgers:
        print(ledger_table(ledgers))
    for skipped_name, reason in skipped.items():
        print(f"skipped {skipped_name}: {reason}")
    print(f"logs: {workdir}")


if __name__ == "__main__":
    threading.current_thread().name = "chaos"
    _stop_on_sigterm()
    sys.exit(main())
