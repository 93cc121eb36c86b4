"""Where a referral's gateway CPU goes: thread CPU per stage, the hub against the floor.

    .venv/bin/python -m tests.benchmarks.profile_gateway [--referrals 3000] [--concurrency 16]

Runs ``POST /v1/referrals`` straight into the ASGI app (no HTTP, no uvicorn), in one process on
a fresh PostgreSQL database, as many at a time as ``--concurrency``: first the hub's gateway
app, then the floor (tests.benchmarks.floor_app, the same durable work hand-rolled). For the
hub, each stage below is wrapped in a timer of the CPU time of the thread that runs it
(``time.thread_time_ns``), so the figures are CPU, not waiting, and add up within a thread;
a stage's figure includes the stages it calls. The wrapping costs about a microsecond a call;
the process's CPU per referral is printed for the run with timers and without.

Not part of ``make bench``: a map for whoever works on the gap between the hub and the floor
(docs/performance.md), not a figure against a target.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvloop
from fastapi.testclient import TestClient

from hub.app import create_app
from tests.benchmarks import floor_app
from tests.benchmarks.bench_ingest import body
from tests.benchmarks.common import postgres_database, table
from tests.hubtest import make_hub

#: (module, attribute path): where the stage's function is looked up when called.
STAGES = [
    ("hub.commits", "CommitGroup._together"),
    ("sqlalchemy.orm.session", "Session.commit"),
    ("hub.referrals.routes", "run_first"),
    ("hub.referrals.service", "_request_referral"),
    ("hub.referrals.service", "resolve_person"),
    ("hub.people.service", "seal_values"),
    ("hub.people.service", "index_person"),
    ("hub.referrals.service", "seal_event"),
    ("hub.referrals.service", "routing.at_acceptance"),
    ("hub.referrals.service", "add_rows"),
    ("hub.referrals.idempotency", "_store"),
    ("hub.staged", "_write_together"),
    ("sqlalchemy.engine.base", "Connection.exec_driver_sql"),
    ("psycopg", "RawCursor.execute"),
    ("psycopg._queries", "PostgresRawQuery.dump"),
    ("hub.api.deps", "_called_from_memory"),
    ("hub.referrals.routes", "request_hash"),
    ("hub.referrals.routes", "_respond"),
]


@contextmanager
def timed(stages: list[tuple[str, str]]) -> Iterator[tuple[collections.Counter[str], ...]]:
    """Wrap each stage in a thread-CPU timer for the block; (nanoseconds, calls) by stage."""
    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    undo: list[tuple[Any, str, Any]] = []
    for module, path in stages:
        owner: Any = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        function = getattr(owner, name)  # an AttributeError names a stage that moved
        undo.append((owner, name, function))
        setattr(owner, name, _timer(f"{module}:{path}", function, spent, calls))
    try:
        yield spent, calls
    finally:
        for owner, name, function in reversed(undo):
            setattr(owner, name, function)


def _timer(
    label: str,
    function: Callable[..., Any],
    spent: collections.Counter[str],
    calls: collections.Counter[str],
) -> Callable[..., Any]:
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time_ns()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] += time.thread_time_ns() - start
            calls[label] += 1

    return timed_call


async def drive(app: Any, token: str, first: int, count: int, concurrency: int, tag: str) -> None:
    """``count`` referrals into ``app``, ``concurrency`` at a time; each must be a 202."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        raw = json.dumps(body(n, tag)).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/referrals",
            "raw_path": b"/v1/referrals",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"hub"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                (b"authorization", f"Bearer {token}".encode()),
                (b"idempotency-key", f"{tag}-{n}".encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent, status = False, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async with gate:
            await app(scope, receive, send)
        if status != [202]:
            raise RuntimeError(f"referral {n}: {status}")

    await asyncio.gather(*(one(n) for n in range(first, first + count)))


def cpu_per_referral(
    app: Any,
    token: str,
    args: argparse.Namespace,
    tag: str,
    stages: list[tuple[str, str]] | None = None,
) -> tuple[float, collections.Counter[str], collections.Counter[str]]:
    """Process CPU ms per referral over ``args.referrals`` after 200 to warm up; with
    ``stages``, also their thread CPU (ns) and calls over the same referrals."""

    async def run() -> tuple[float, collections.Counter[str], collections.Counter[str]]:
        async with app.router.lifespan_context(app):
            await drive(app, token, 0, 200, args.concurrency, f"{tag}-warm")
            with timed(stages or []) as (spent, calls):
                start = time.process_time()
                await drive(app, token, 200, args.referrals, args.concurrency, tag)
                cpu = time.process_time() - start
            return 1000 * cpu / args.referrals, spent, calls

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    uvloop.install()  # the gateway's loop under uvicorn
    with postgres_database("profile_gateway") as url, tempfile.TemporaryDirectory() as tmp:
        hub, partners = make_hub(
            url, Path(tmp), rate_limit_api_per_minute=10**9, rate_limit_api_per_day=10**9
        )
        try:
            with TestClient(create_app(hub, kafka_check=lambda: True)) as client:
                token = partners.token(client, "ude")
            app = create_app(hub, kafka_check=lambda: True)
            plain, _, _ = cpu_per_referral(app, token, args, "plain")
            with_timers, spent, calls = cpu_per_referral(app, token, args, "timed", STAGES)
            app.state.token_validator.close()
            floor_app.accept(token, "ude")
            os.environ["BENCH_DATABASE"] = url.replace("+psycopg", "")
            floor, _, _ = cpu_per_referral(floor_app.app, token, args, "floor")
        finally:
            hub.engine.dispose()
    n = args.referrals
    table(
        f"gateway stages, thread CPU per referral ({n} referrals, {args.concurrency} at a time, "
        "in-process, PostgreSQL)",
        ["stage", "µs per referral", "calls per referral"],
        [
            [label, round(ns / n / 1000, 1), round(calls[label] / n, 2)]
            for label, ns in spent.most_common()
        ],
    )
    table(
        "process CPU per referral",
        ["run", "ms"],
        [["hub", plain], ["hub with the stage timers", with_timers], ["floor", floor]],
    )


if __name__ == "__main__":
    main()
