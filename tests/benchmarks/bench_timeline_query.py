"""Benchmark: the timeline query of one person with 1,000 entries among 1,000,000, on PostgreSQL.

    .venv/bin/python -m tests.benchmarks.bench_timeline_query [--entries 1000000] [--runs 300]

Fills a fresh database ``bench_timeline`` with COPY: the target person's entries are spread
evenly over the table (one in every ``entries / person_entries`` rows, as if they had arrived
over months among everyone else's), the other entries belong to ~50-entry people. Then times
``hub.timeline.service.timeline_for_partner`` (the partner API's query, viewer ``ude``, which
takes part in all 50 of the person's referrals) and ``timeline_for_staff`` (all purposes; one
purpose; newest 50), each call in a new session as a request would. ``db ms`` is the time
inside ``cursor.execute`` (PostgreSQL plus transfer), the rest is SQLAlchemy and Python.
Each query is timed with Python's default garbage collector ("default") and then as the
hub's server processes run it after ``hub.runtime.tune_gc()`` ("hub").
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, insert, text

from hub import runtime
from hub.db import unit_of_work
from hub.referrals.models import Referral
from hub.timeline import service
from tests.benchmarks.common import percentile, postgres_database, table, write_result
from tests.hubtest import make_hub

PURPOSES = ("residence", "recognition", "employment", "education")
PARTNERS = ("amt", "ude", "ihk-fosa", "hwk", "jobcenter")
COLUMNS = (
    "event_id, person_id, referral_id, referral_type, source_partner, event_type, status, "
    "business_status, purpose, legal_basis, occurred_at, recorded_at, projected_at"
)


def fill(hub: Any, url: str, *, total: int, target_entries: int, referrals: int) -> str:
    """COPY ``total`` entries; returns the person with ``target_entries`` of them."""
    target = f"p_bench_target_{uuid.uuid4().hex[:12]}"
    per_other = 50
    others = (total - target_entries) // per_other
    start = datetime(2025, 1, 1, tzinfo=UTC)
    target_refs = [str(uuid.uuid4()) for _ in range(referrals)]
    with unit_of_work(hub.session_factory) as session:
        session.execute(
            text("INSERT INTO people (id, created_at) VALUES (:id, now())"), {"id": target}
        )
        session.execute(
            insert(Referral),
            [
                {
                    "id": rid,
                    "type": "residence.student",
                    "requester_id": "ude",
                    "performer_id": "amt",
                    "person_id": target,
                    "status": "in-progress",
                    "correlation_id": str(uuid.uuid4()),
                    "payload": {},
                }
                for rid in target_refs
            ],
        )
    every = max(1, total // target_entries)
    stamps = [(start + timedelta(minutes=7 * i)).isoformat() for i in range(total)]
    with psycopg.connect(url.replace("+psycopg", "")) as conn, conn.cursor() as cur:
        with cur.copy("COPY people (id, created_at) FROM STDIN") as copy:
            copy.write("".join(f"p_bench_{i:07d}\t{stamps[0]}\n" for i in range(others)))
        buf = io.StringIO()
        seen_target = other_row = 0
        with cur.copy(f"COPY timeline_entries ({COLUMNS}) FROM STDIN") as copy:
            for n in range(total):
                if n % every == 0 and seen_target < target_entries:
                    person = target
                    referral = target_refs[seen_target % referrals]
                    k = seen_target
                    seen_target += 1
                else:
                    person = f"p_bench_{(other_row // per_other) % others:07d}"
                    referral = f"00000000-0000-4000-9000-{other_row // 10:012d}"
                    k = other_row
                    other_row += 1
                at = stamps[n]
                buf.write(
                    f"00000000-0000-4000-8000-{n:012d}\t{person}\t{referral}\tresidence.student\t"
                    f"{PARTNERS[k % 5]}\tde.duisburg.talenthub.referral.status-changed.v1\t"
                    f"in-progress\tFILE_COMPLETE\t{PURPOSES[k % 4]}\t§ 16b AufenthG\t"
                    f"{at}\t{at}\t{at}\n"
                )
                if n % 50_000 == 49_999:
                    copy.write(buf.getvalue())
                    buf = io.StringIO()
            copy.write(buf.getvalue())
        assert seen_target == target_entries, seen_target
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE timeline_entries")
        cur.execute("VACUUM ANALYZE people")
        cur.execute("VACUUM ANALYZE referrals")
    return target


class DbTimer:
    """Time spent in cursor.execute on this engine."""

    def __init__(self, engine: Any) -> None:
        self.total = 0.0
        self._began = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *_: Any) -> None:
        self._began = time.perf_counter()

    def _after(self, *_: Any) -> None:
        self.total += time.perf_counter() - self._began


def measure(
    hub: Any, timer: DbTimer, query: Callable[[Any], list[Any]], runs: int
) -> dict[str, Any]:
    for _ in range(10):
        with hub.session_factory() as session:
            rows = len(query(session))
    wall: list[float] = []
    db: list[float] = []
    for _ in range(runs):
        timer.total = 0.0
        began = time.perf_counter()
        with hub.session_factory() as session:
            query(session)
        wall.append((time.perf_counter() - began) * 1000)
        db.append(timer.total * 1000)
    return {
        "rows": rows,
        "runs": runs,
        "p50_ms": percentile(wall, 50),
        "p99_ms": percentile(wall, 99),
        "db_p50_ms": percentile(db, 50),
        "db_p99_ms": percentile(db, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--person-entries", type=int, default=1_000)
    parser.add_argument("--referrals", type=int, default=50, help="the person's referrals")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, postgres_database("bench_timeline") as url:
        hub, _ = make_hub(url, Path(tmp))
        began = time.perf_counter()
        person = fill(
            hub,
            url,
            total=args.entries,
            target_entries=args.person_entries,
            referrals=args.referrals,
        )
        fill_s = time.perf_counter() - began
        print(f"filled {args.entries:,} entries in {fill_s:.1f} s (COPY + VACUUM ANALYZE)")
        timer = DbTimer(hub.engine)
        everything = frozenset(PURPOSES)
        queries: dict[str, Callable[[Any], list[Any]]] = {
            "timeline_for_partner (viewer ude)": lambda s: service.timeline_for_partner(
                s, person_id=person, viewer="ude", policy=hub.policy
            ),
            "timeline_for_staff (4 purposes)": lambda s: service.timeline_for_staff(
                s, person_id=person, purposes=everything
            ),
            "timeline_for_staff (1 purpose)": lambda s: service.timeline_for_staff(
                s, person_id=person, purposes=frozenset({"residence"})
            ),
            "timeline_for_staff (newest 50)": lambda s: service.timeline_for_staff(
                s, person_id=person, purposes=everything, newest_first=True, limit=50
            ),
        }
        # First with Python's default collector, then as the hub's server processes run it
        # (hub.runtime.tune_gc at start-up): the difference is the collector's pauses.
        default_gc = {name: measure(hub, timer, q, args.runs) for name, q in queries.items()}
        runtime.tune_gc()
        results = {name: measure(hub, timer, q, args.runs) for name, q in queries.items()}
        with hub.engine.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN (ANALYZE, BUFFERS) SELECT t.* FROM timeline_entries t "
                    "WHERE t.person_id = :p AND t.referral_id IN (SELECT r.id FROM referrals r "
                    "WHERE r.person_id = :p "
                    "AND (r.requester_id = 'ude' OR r.performer_id = 'ude')) "
                    "ORDER BY t.occurred_at, t.id"
                ),
                {"p": person},
            ).scalars()
            plan_text = "\n".join(plan)
        hub.engine.dispose()
    print("\nplan of the partner query:\n" + plan_text)
    table(
        f"timeline query: person with {args.person_entries:,} of {args.entries:,} entries "
        f"(PostgreSQL, {args.runs} runs)",
        ["query", "gc", "rows", "p50 ms", "p99 ms", "db p50 ms", "db p99 ms"],
        [
            [name, gc, r["rows"], r["p50_ms"], r["p99_ms"], r["db_p50_ms"], r["db_p99_ms"]]
            for gc, runs in (("default", default_gc), ("hub", results))
            for name, r in runs.items()
        ],
    )
    write_result(
        "timeline_query",
        {
            "entries": args.entries,
            "person_entries": args.person_entries,
            "fill_seconds": round(fill_s, 1),
            "results": results,
            "results_default_gc": default_gc,
            "partner_query_plan": plan_text,
        },
    )


if __name__ == "__main__":
    main()
