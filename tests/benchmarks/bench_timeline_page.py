"""Benchmark: render the staff timeline page of a client with 500 entries among 100,000.

Not a test (timings on a shared machine flake); run it and read the figures:

    .venv/bin/python -m tests.benchmarks.bench_timeline_page            # SQLite in a temp dir
    .venv/bin/python -m tests.benchmarks.bench_timeline_page --database-url postgresql+psycopg://...

Each request goes through the whole stack in process: session cookie lookup, purpose checks,
the timeline query, the audit record of the view, and Jinja rendering. Target: p95 < 150 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from hub.db import unit_of_work, utcnow
from hub.people.models import Person
from hub.timeline.models import TimelineEntry
from hub.web.accounts import add_staff
from tests.hubtest import make_hub
from tests.staffweb import PASSWORD, log_in, staff_client

PURPOSES = ("residence", "recognition", "employment", "education")
PARTNERS = ("amt", "ude", "ihk-fosa", "hwk", "jobcenter")


def fill(hub: object, *, total: int, target_entries: int) -> str:
    """``total`` entries over many people; the returned person has ``target_entries``."""
    session_factory = hub.session_factory  # type: ignore[attr-defined]
    others = max(1, (total - target_entries) // 500)
    people = [f"p_bench_target_{uuid.uuid4().hex[:12]}"] + [
        f"p_bench_{i:05d}_{uuid.uuid4().hex[:8]}" for i in range(others)
    ]
    start = utcnow() - timedelta(days=400)
    with unit_of_work(session_factory) as session:
        session.execute(insert(Person), [{"id": p} for p in people])
    rows: list[dict[str, object]] = []
    for n, person in enumerate(people):
        count = target_entries if n == 0 else (total - target_entries) // others
        for i in range(count):
            at = start + timedelta(hours=i * 7)
            rows.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "person_id": person,
                    "referral_id": str(uuid.uuid4()),
                    "referral_type": "recognition.assessment",
                    "source_partner": PARTNERS[i % len(PARTNERS)],
                    "event_type": "de.duisburg.talenthub.referral.status-changed.v1",
                    "status": "in-progress",
                    "business_status": "FILE_COMPLETE",
                    "purpose": PURPOSES[i % len(PURPOSES)],
                    "legal_basis": "§ 6 BQFG",
                    "occurred_at": at,
                    "recorded_at": at + timedelta(minutes=3),
                    "projected_at": at + timedelta(minutes=3),
                }
            )
        if len(rows) >= 10_000:
            with unit_of_work(session_factory) as session:
                session.execute(insert(TimelineEntry), rows)
            rows = []
    if rows:
        with unit_of_work(session_factory) as session:
            session.execute(insert(TimelineEntry), rows)
    return people[0]


def measure(client: TestClient, path: str, runs: int) -> list[float]:
    for _ in range(5):  # warm-up: templates compiled, connections pooled
        assert client.get(path).status_code == 200
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        r = client.get(path)
        timings.append((time.perf_counter() - began) * 1000)
        assert r.status_code == 200
    return timings


def report(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p95 = ordered[round(0.95 * (len(ordered) - 1))]
    print(
        f"{name}: n={len(ordered)} p50={statistics.median(ordered):.1f} ms "
        f"p95={p95:.1f} ms max={ordered[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--client-entries", type=int, default=500)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        hub, _ = make_hub(url, Path(tmp))
        began = time.perf_counter()
        person = fill(hub, total=args.entries, target_entries=args.client_entries)
        took = time.perf_counter() - began
        print(f"filled {args.entries} entries in {took:.1f} s ({url.split(':')[0]})")
        with unit_of_work(hub.session_factory) as session:
            add_staff(
                session,
                email="bench@stadt-duisburg.de",
                role="caseworker",
                purposes=list(PURPOSES),
                password=PASSWORD,
            )
        with staff_client(hub) as client:
            assert log_in(client, "bench@stadt-duisburg.de").status_code == 303
            page = client.get(f"/staff/people/{person}")
            shown = page.text.count('class="entry ')
            print(f"timeline page shows {shown} entries, {len(page.content) / 1024:.0f} KiB")
            report("timeline page", measure(client, f"/staff/people/{person}", args.runs))
            report(
                "entries fragment (live update)",
                measure(client, f"/staff/people/{person}/entries", args.runs),
            )
        hub.engine.dispose()


if __name__ == "__main__":
    main()
