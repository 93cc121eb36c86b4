"""Benchmark: POST /v1/referrals to the push delivery at the performer's (simulated) system.

    .venv/bin/python -m tests.benchmarks.bench_end_to_end [--rates 10,100,300,500] [--duration 10]

Processes: embedded broker, ``hub gateway``, ``hub relay``, ``hub consume router`` and
``hub consume delivery``, each its own process, on PostgreSQL (SQLite with ``--sqlite``);
``--also timeline,deadlines`` adds the consumers that are not on the way to the partner but
run in every deployment (their marks also let the relay settle the events' rows).
The Amt's simulator (connectors.authority) runs in this process with the open-loop load
generator: requests are scheduled at a fixed rate whatever the answers (up to
``--connections`` connections); latency runs from a request's *scheduled* time to the moment
the simulator's webhook records the delivery, so a backlog shows up in the figures.

A rate counts as sustained when every offered referral was accepted and delivered and p99
stayed below 1 s (a pipeline that falls behind builds a backlog, and p99 grows with the run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hub.kafka.client import ensure_topics
from hub.kafka.embedded import EmbeddedBroker
from hub.runtime import topic_plan
from tests.benchmarks.bench_ingest import RawConnection, body
from tests.benchmarks.common import (
    free_port,
    own_cpu_seconds,
    percentile,
    postgres_available,
    postgres_cpu_seconds,
    postgres_database,
    spawn,
    stop,
    table,
    tree_cpu_seconds,
    wait_http,
    write_result,
)
from tests.hubtest import make_hub
from tests.integration.conftest import Running
from tests.integration.push import start_sims


async def offer(
    url: str, token: str, rate: float, duration: float, connections: int, grace: float
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Open loop: ``rate`` requests per second for ``duration``; referral id -> scheduled
    time, referral id -> time of its 202, and the errors.

    Requests still unanswered ``grace`` seconds after the last was due are abandoned (they
    count as not accepted), so an overloaded run ends in bounded time.
    """
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(RawConnection(host, int(port)))
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    errors: dict[str, int] = {}
    tag = uuid.uuid4().hex[:6]
    headers = {"Authorization": f"Bearer {token}"}

    async def one(n: int, at: float) -> None:
        conn = await pool.get()
        try:
            status, answer = await conn.post(
                "/v1/referrals",
                json.dumps(body(n, tag)).encode(),
                {**headers, "Idempotency-Key": f"e2e-{tag}-{n}"},
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            conn = RawConnection(host, int(port))
        else:
            if status == 202:
                rid = json.loads(answer)["id"]
                sent[rid], answered[rid] = at, time.perf_counter()
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            pool.put_nowait(conn)

    tasks = []
    began = time.perf_counter()
    total = int(rate * duration)
    for n in range(total):
        at = began + n / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, at)))
    _, pending = await asyncio.wait(
        tasks, timeout=max(0.0, began + duration + grace - time.perf_counter())
    )
    for task in pending:
        task.cancel()
    if pending:
        errors["abandoned"] = len(pending)
    return sent, answered, errors


#: The hub's processes of the pipeline, in the order they are spawned.
PROCESSES = ["gateway", "relay", "router", "delivery"]


@dataclass
class Pipeline:
    """A running pipeline: where to send, as whom, what arrived when, and its processes."""

    gateway: str
    token: str
    received: dict[str, float]
    pids: dict[str, int]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far of each process, PostgreSQL's and this one's (load and
        simulator)."""
        used = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        return {**used, "postgresql": postgres_cpu_seconds(), "load+simulator": own_cpu_seconds()}


@contextmanager
def pipeline(args: argparse.Namespace, tmp: Path) -> Iterator[Pipeline]:
    """Everything running, with the process ids to account its CPU time to."""
    with EmbeddedBroker(log_path=tmp / "broker.log") as broker, _database(args) as url:
        kafka = broker.bootstrap_servers
        overrides = {"kafka_bootstrap_servers": kafka, "relay_poll_interval_seconds": 0.2}
        hub, partners = make_hub(url, tmp, **overrides)
        env = {
            "HUB_DATABASE_URL": url,
            "HUB_DATA_DIR": str(tmp),
            "HUB_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_RELAY_POLL_INTERVAL_SECONDS": "0.2",
            "HUB_RATE_LIMIT_API_PER_MINUTE": "100000000",
            "HUB_RATE_LIMIT_API_PER_DAY": "100000000",
        }
        running = Running(hub, partners, env)
        sims = start_sims(running, ["amt"])
        received: dict[str, float] = {}
        state = sims["amt"].state
        record = state.record

        def stamped(delivery: Any, idempotency_key: str | None) -> bool:
            received.setdefault(delivery.referral_id, time.perf_counter())
            return bool(record(delivery, idempotency_key))

        state.record = stamped
        ensure_topics(kafka, topic_plan(hub))
        port = free_port()
        procs = [
            spawn(
                ["-m", "hub", "gateway"],
                env={**env, "HUB_HTTP_PORT": str(port)},
                log=tmp / "gw.log",
            ),
            spawn(["-m", "hub", "relay"], env=env, log=tmp / "relay.log"),
            spawn(["-m", "hub", "consume", "router"], env=env, log=tmp / "router.log"),
            spawn(["-m", "hub", "consume", "delivery"], env=env, log=tmp / "delivery.log"),
        ]
        procs += [
            spawn(["-m", "hub", "consume", name], env=env, log=tmp / f"{name}.log")
            for name in args.also
        ]
        gateway = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{gateway}/openapi.json", procs[0])
            with httpx.Client(base_url=gateway) as client:
                token = partners.token(client, "ude")
            pids = {name: p.pid for name, p in zip(PROCESSES + args.also, procs, strict=True)}
            assert broker.pid is not None
            yield Pipeline(gateway, token, received, {**pids, "broker": broker.pid})
        finally:
            for p in procs:
                stop(p)
            sims["amt"].server.stop()
            hub.engine.dispose()


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    if args.sqlite:
        yield f"sqlite:///{args.tmp / 'hub.db'}"
        return
    with postgres_database("bench_e2e") as url:
        yield url


def run_rate(running: Pipeline, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    received = running.received
    cpu_before = running.cpu_seconds()
    began = time.perf_counter()
    sent, answered, errors = asyncio.run(
        offer(running.gateway, running.token, rate, args.duration, args.connections, args.grace)
    )
    offered_for = time.perf_counter() - began
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline and not all(r in received for r in sent):
        time.sleep(0.1)
    latencies = [(received[r] - at) * 1000 for r, at in sent.items() if r in received]
    # The part after the 202: relay, router, delivery; the rest is the gateway's.
    after_202 = [(received[r] - answered[r]) * 1000 for r in sent if r in received]
    last = max((received[r] for r in sent if r in received), default=began)
    delivered = sum(1 for r in sent if r in received)
    delivered_rate = delivered / (last - began) if last > began else 0.0
    p99 = percentile(latencies, 99)
    cpu_after = running.cpu_seconds()
    # Drained at once, or idle for a while when something was never delivered.
    took = time.perf_counter() - began
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    result = {
        "offered_per_second": rate,
        "offered": int(rate * args.duration),
        "accepted": len(sent),
        "delivered": delivered,
        "errors": errors,
        "offering_took_s": round(offered_for, 2),
        "delivered_per_second": delivered_rate,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": p99,
        "after_202_p50_ms": percentile(after_202, 50),
        "after_202_p99_ms": percentile(after_202, 99),
        "sustained": bool(delivered == len(sent) == int(rate * args.duration) and p99 < 1000),
        "cpu_cores": {name: round(seconds / took, 3) for name, seconds in cpu.items()},
        "cpu_ms_per_delivered": {
            name: round(1000 * seconds / delivered, 2) if delivered else None
            for name, seconds in cpu.items()
        },
    }
    print(
        f"{rate:.0f}/s: delivered {delivered}/{len(sent)} at {delivered_rate:.0f}/s "
        f"p50={result['p50_ms']:.0f} p95={result['p95_ms']:.0f} p99={p99:.0f} ms "
        f"(after the 202: p50={result['after_202_p50_ms']:.0f} "
        f"p99={result['after_202_p99_ms']:.0f} ms) "
        f"errors={errors}",
        flush=True,
    )
    per = result["cpu_ms_per_delivered"]
    print(
        "  CPU ms per delivered referral: "
        + ", ".join(f"{name} {ms}" for name, ms in per.items())
        + f" (total {sum(ms or 0 for ms in per.values()):.2f})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="10,100,300,500", help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--grace", type=float, default=15.0, help="see offer()")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for delivery")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument(
        "--also",
        type=lambda names: [n for n in names.split(",") if n],
        default=[],
        help="consumers to run as well, e.g. timeline,deadlines: the whole pipeline of `hub up`",
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if not args.sqlite and not postgres_available():
        args.sqlite = True
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = Path(tmp)
        with pipeline(args, Path(tmp)) as running:
            warm = run_rate(running, 20, argparse.Namespace(**{**vars(args), "duration": 2}))
            if not warm["accepted"] or warm["delivered"] < warm["accepted"]:
                # A broken pipeline would otherwise print a table of zeros and exit 0.
                sys.exit(
                    f"warm-up: {warm['delivered']} of {warm['accepted']} accepted referrals "
                    "delivered; the pipeline does not work, no figures"
                )
            for rate in (float(r) for r in args.rates.split(",")):
                results.append(run_rate(running, rate, args))
    sustained = max((r["offered_per_second"] for r in results if r["sustained"]), default=0)
    db = "SQLite" if args.sqlite else "PostgreSQL"
    table(
        f"end to end: POST -> push delivery at the simulated Amt, open loop, "
        f"{args.duration:.0f} s per rate, {db}",
        [
            "offered/s",
            "accepted",
            "delivered",
            "delivered/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "after 202 p50/p99 ms",
            "sustained",
        ],
        [
            [
                r["offered_per_second"],
                r["accepted"],
                r["delivered"],
                r["delivered_per_second"],
                r["p50_ms"],
                r["p95_ms"],
                r["p99_ms"],
                f"{r['after_202_p50_ms']:.1f} / {r['after_202_p99_ms']:.1f}",
                "yes" if r["sustained"] else "no",
            ]
            for r in results
        ],
    )
    names = list(results[0]["cpu_ms_per_delivered"]) if results else []
    table(
        "CPU ms per delivered referral, by process (from offering the first to delivering the "
        "last); PostgreSQL: all its processes on this machine",
        ["offered/s", *names, "total"],
        [
            [
                r["offered_per_second"],
                *(r["cpu_ms_per_delivered"][n] for n in names),
                round(sum(v or 0 for v in r["cpu_ms_per_delivered"].values()), 2),
            ]
            for r in results
        ],
    )
    print(f"highest sustained rate among those offered: {sustained:.0f}/s")
    write_result(
        "end_to_end",
        {
            "database": db,
            "duration_s": args.duration,
            "consumers": ["router", "delivery", *args.also],
            "results": results,
            "highest_sustained_per_second": sustained,
        },
    )


if __name__ == "__main__":
    main()
