"""Benchmark: one settling pass of the relay against a long history of consumers' marks.

    .venv/bin/python -m tests.benchmarks.bench_settlement [--events 100000] [--unsettled 4000]

On PostgreSQL: ``--events`` settled events, each with the marks of the router, the timeline
and the deadline consumer (the marks are kept for months), and ``--unsettled`` published rows
only the router has applied so far (the timeline and deadline consumers are behind). The
relay settles once a second (``hub.outbox.settlement.Settler``) and looks at an owed row
again after 1, 2, 4, 8 and then every 10 s: reported are the wall time and this process's
CPU of the first pass over the rows and of a pass a second after it, averaged over
``--passes`` seconds, with the index on the marks' event id and then, for comparison, after
dropping it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from hub.db import unit_of_work
from hub.outbox.settlement import Settler
from tests.benchmarks.common import postgres_available, postgres_database, table, write_result
from tests.hubtest import make_hub

HISTORY = """
INSERT INTO outbox (event_id, topic, headers, value, created_at, published_at, settled_at,
                    replay)
SELECT 'e' || i, 'hub.events.v1', '[]', '{}', now(), now(), now(), 0
FROM generate_series(1, :n) AS i;
INSERT INTO processed_events (consumer, event_id, processed_at)
SELECT c, 'e' || i, now() FROM generate_series(1, :n) AS i,
       unnest(ARRAY['router', 'timeline', 'deadlines']) AS c;
"""
UNSETTLED = """
INSERT INTO outbox (event_id, topic, headers, value, created_at, published_at, settled_at,
                    replay)
SELECT 'u' || i, 'hub.events.v1', '[]', '{}', now(), now(), NULL, 0
FROM generate_series(1, :n) AS i;
INSERT INTO processed_events (consumer, event_id, processed_at)
SELECT 'router', 'u' || i, now() FROM generate_series(1, :n) AS i;
"""


def passes(hub: Any, count: int) -> dict[str, float]:
    """Wall and CPU milliseconds of a settler's first pass over the unsettled rows, and of
    a pass a second after it while they stay owed, averaged over ``count`` seconds."""
    now = [0.0]
    settler = Settler(hub.session_factory, hub.settings, clock=lambda: now[0])
    cpu, wall = time.process_time(), time.perf_counter()
    settler.settle()
    first = {
        "first_wall_ms": 1000 * (time.perf_counter() - wall),
        "first_cpu_ms": 1000 * (time.process_time() - cpu),
    }
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        now[0] += 1.0
        settler.settle()
    return {
        **first,
        "wall_ms": 1000 * (time.perf_counter() - wall) / count,
        "cpu_ms": 1000 * (time.process_time() - cpu) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="settled, 3 marks each")
    parser.add_argument("--unsettled", type=int, default=4000)
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    if not postgres_available():
        print("PostgreSQL not reachable: nothing to measure")
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp, postgres_database("bench_settlement") as url:
        hub, _ = make_hub(url, Path(tmp))
        try:
            with unit_of_work(hub.session_factory) as session:
                for sql in (*HISTORY.split(";")[:2], *UNSETTLED.split(";")[:2]):
                    n = args.events if "'e'" in sql else args.unsettled
                    session.execute(text(sql), {"n": n})
            with hub.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            for label, drop in (("with the index", False), ("without it", True)):
                if drop:
                    with hub.engine.begin() as conn:
                        conn.exec_driver_sql("DROP INDEX ix_processed_events_event_id")
                results.append({"index": label, **passes(hub, args.passes)})
        finally:
            hub.engine.dispose()
    table(
        f"settling: {args.unsettled} unsettled rows, {3 * args.events:,} marks of "
        f"{args.events:,} settled events",
        [
            "marks' event id",
            "first pass wall ms",
            "relay CPU ms",
            "then per second: wall ms",
            "relay CPU ms",
        ],
        [
            [r["index"], r["first_wall_ms"], r["first_cpu_ms"], r["wall_ms"], r["cpu_ms"]]
            for r in results
        ],
    )
    write_result("settlement", {**vars(args), "results": results})


if __name__ == "__main__":
    main()
