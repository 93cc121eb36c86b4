"""Benchmark: accepted referrals per second, POST /v1/referrals with a bearer token (202).

    .venv/bin/python -m tests.benchmarks.bench_ingest [--concurrency 16] [--duration 15]

Each server runs in its own process (uvicorn, one worker, on loopback); the load generator
(httpx.AsyncClient, ``--generators`` processes sharing ``--concurrency`` clients, each client
one request at a time, closed loop) runs here. Targets, all with the same generator:

* ``bare``: FastAPI parsing the body into ReferralCreate and answering 202 (HTTP ceiling);
* ``direct-kafka``: the same plus a kafka-python produce with acks=all, waiting for the ack;
* ``floor-postgres``: the hub's durable work for a referral, hand-rolled
  (tests.benchmarks.floor_app: the same rows in the same tables, sealed fields, group commit,
  as many workers as the hub) without the hub's plumbing: what the work itself costs here;
* ``hub-sqlite`` / ``hub-postgres``: ``hub gateway`` (token check, rate limit, validation,
  policy, person key, encrypted fields, referral + outbox event + idempotency record in one
  transaction). The relay is not running (it would publish from another process).

The generator's and the server's CPU use are reported: the generator is not the bottleneck
when its processes stay clearly below one core each. The machine's cores are shared by both.
For the hub targets also the server's CPU per accepted referral (the gateway and its worker
processes, during the measured seconds) and the SQL statements of one referral, counted on
the same database in this process (SQLAlchemy ``before_cursor_execute``, SQLite's BEGIN left
out) for a warm token and a request like the load's: a new person with a partner reference
and an ``Idempotency-Key``. In the same seconds: every PostgreSQL process's CPU per accepted
request, and how busy the whole machine was (``machine CPU %``, of 100 per core): a target
whose server process stays below one core while the machine has cores to spare is limited by
that process, one that fills the machine by everything sharing it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from hub.bootstrap import Hub
from hub.kafka.client import ensure_topics
from hub.kafka.embedded import EmbeddedBroker
from tests.benchmarks.common import (
    free_port,
    machine_busy_seconds,
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
from tests.hubtest import STUDENT_REFERRAL, Partners, api_client, make_hub


def body(n: int, tag: str) -> dict[str, Any]:
    b = dict(STUDENT_REFERRAL)
    b["person"] = {**STUDENT_REFERRAL["person"], "partner_reference": f"ES{tag}{n:08d}"}
    return b


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client: far cheaper per request than httpx."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
            ).encode()
            + body
        )
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, (await self.reader.readexactly(length) if length else b"")


async def _raw_clients(
    url: str,
    token: str | None,
    clients: int,
    start_at: float,
    warmup: float,
    duration: float,
    tag: str,
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(10**9))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    t0, t1 = began + warmup, began + warmup + duration
    cpu0: list[float] = []

    async def client() -> None:
        conn = RawConnection(host, int(port))
        while True:
            n = next(counter)
            start = time.perf_counter()
            if start >= t1:
                return
            if start >= t0 and not cpu0:
                cpu0.append(own_cpu_seconds())
            status, _ = await conn.post(
                "/v1/referrals",
                json.dumps(body(n, tag)).encode(),
                {**headers, "Idempotency-Key": f"bench-{tag}-{n}"},
            )
            end = time.perf_counter()
            if status != 202:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif start >= t0 and end <= t1:
                latencies.append((end - start) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    cpu = own_cpu_seconds() - (cpu0[0] if cpu0 else 0.0)
    return {"latencies": latencies, "errors": errors, "cpu": cpu}


async def _clients(
    url: str,
    token: str | None,
    clients: int,
    start_at: float,
    warmup: float,
    duration: float,
    tag: str,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(10**9))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        began = time.perf_counter()
        t0, t1 = began + warmup, began + warmup + duration
        cpu0: list[float] = []

        async def client() -> None:
            while True:
                n = next(counter)
                start = time.perf_counter()
                if start >= t1:
                    return
                if start >= t0 and not cpu0:
                    cpu0.append(own_cpu_seconds())
                r = await http.post(
                    "/v1/referrals",
                    json=body(n, tag),
                    headers={**headers, "Idempotency-Key": f"bench-{tag}-{n}"},
                )
                end = time.perf_counter()
                if r.status_code != 202:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                elif start >= t0 and end <= t1:
                    latencies.append((end - start) * 1000)

        await asyncio.gather(*(client() for _ in range(clients)))
        cpu = own_cpu_seconds() - (cpu0[0] if cpu0 else 0.0)
    return {"latencies": latencies, "errors": errors, "cpu": cpu}


def _generator(
    args: tuple[str, str, str | None, int, float, float, float, str],
) -> dict[str, Any]:
    kind, *rest = args
    return asyncio.run((_raw_clients if kind == "raw" else _clients)(*rest))  # type: ignore[arg-type]


def load(
    url: str,
    token: str | None,
    *,
    concurrency: int,
    generators: int,
    warmup: float,
    duration: float,
    server_pid: int | None = None,
    client: str = "raw",
) -> dict[str, Any]:
    """Closed-loop load; figures from the ``duration`` seconds after ``warmup``."""
    per = [concurrency // generators + (i < concurrency % generators) for i in range(generators)]
    tag = uuid.uuid4().hex[:6]
    start_at = time.time() + 3.0  # time for the generator processes to start
    jobs = [
        (client, url, token, n, start_at, warmup, duration, f"{tag}{i}") for i, n in enumerate(per)
    ]
    server_cpu = None
    server_seconds = None
    postgres_seconds = None
    machine_cpu = None
    with multiprocessing.get_context("spawn").Pool(generators) as pool:
        pending = pool.map_async(_generator, jobs)
        if server_pid is not None:
            time.sleep(max(0.0, start_at + warmup - time.time()))
            before = tree_cpu_seconds(server_pid)
            postgres_before = postgres_cpu_seconds()
            machine_before = machine_busy_seconds()
            time.sleep(max(0.0, start_at + warmup + duration - time.time()))
            server_seconds = tree_cpu_seconds(server_pid) - before
            postgres_seconds = postgres_cpu_seconds() - postgres_before
            machine_cpu = round(100 * (machine_busy_seconds() - machine_before) / duration)
            server_cpu = round(100 * server_seconds / duration)
        parts = pending.get()
    latencies = [x for p in parts for x in p["latencies"]]
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "errors": errors,
        "generator_cpu_percent": [round(100 * p["cpu"] / duration) for p in parts],
        "server_cpu_percent": server_cpu,
        "server_cpu_ms_per_request": (
            1000 * server_seconds / len(latencies) if server_seconds and latencies else None
        ),
        "postgres_cpu_ms_per_request": (
            1000 * postgres_seconds / len(latencies)
            if postgres_seconds is not None and latencies
            else None
        ),
        "machine_cpu_percent": machine_cpu,
    }


def statements_per_referral(hub: Hub, partners: Partners) -> int:
    """SQL statements of one warm referral like the load's, counted in this process."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            sent.append(statement)

    with api_client(hub) as client:
        headers = partners.headers(client, "ude")
        for n in range(2):  # the first warms the token, its partner and client, the performer
            event.listen(hub.engine, "before_cursor_execute", count)
            sent.clear()
            r = client.post(
                "/v1/referrals",
                json=body(n, "count"),
                headers={**headers, "Idempotency-Key": f"count-{n}"},
            )
            event.remove(hub.engine, "before_cursor_execute", count)
            assert r.status_code == 202, r.text
        # Its listener for revocations ends before the benchmark drops the database.
        client.app.state.token_validator.close()
    return len(sent)


def run_target(
    name: str,
    module_args: list[str],
    env: dict[str, str],
    port: int,
    token_of: Any,
    args: argparse.Namespace,
    log_dir: Path,
) -> dict[str, Any]:
    proc = spawn(module_args, env=env, log=log_dir / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/openapi.json", proc)
        token = token_of(url)
        result = load(
            url,
            token,
            concurrency=args.concurrency,
            generators=args.generators,
            warmup=args.warmup,
            duration=args.duration,
            server_pid=proc.pid,
            client=args.client,
        )
    finally:
        stop(proc)
    result["target"] = name
    cpu_ms = result["server_cpu_ms_per_request"]
    print(
        f"{name}: {result['per_second']:.0f}/s p50={result['p50_ms']:.1f} ms "
        f"server cpu/request={cpu_ms if cpu_ms is None else round(cpu_ms, 2)} ms "
        f"p99={result['p99_ms']:.1f} ms errors={result['errors']} "
        f"gen cpu={result['generator_cpu_percent']}% server cpu={result['server_cpu_percent']}% "
        f"machine cpu={result['machine_cpu_percent']}%",
        flush=True,
    )
    return result


TARGETS = ("bare", "direct-kafka", "floor-postgres", "hub-sqlite", "hub-postgres")


def main() -> None:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # also for the spawned processes
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="load generator's HTTP client"
    )
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument(
        "--gateway-workers", type=int, default=None, help="HUB_GATEWAY_WORKERS of the hub"
    )
    args = parser.parse_args()
    targets = args.targets.split(",")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:  # anything else would silently be measured as a hub on SQLite
        parser.error(f"unknown targets {', '.join(unknown)}: choose from {', '.join(TARGETS)}")
    for name in ("floor-postgres", "hub-postgres"):
        if name in targets and not postgres_available():
            print(f"PostgreSQL not reachable: skipping {name}")
            targets.remove(name)
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        kafka = broker.bootstrap_servers
        ensure_topics(kafka, {"bench.direct.v1": 6})
        uvicorn_common = ["--host", "127.0.0.1", "--log-level", "warning"]
        for name in targets:
            port = free_port()
            if name in ("bare", "direct-kafka"):
                app = "bare" if name == "bare" else "direct_kafka"
                results.append(
                    run_target(
                        name,
                        [
                            "-m",
                            "uvicorn",
                            f"tests.benchmarks.baseline_apps:{app}",
                            *uvicorn_common,
                            "--port",
                            str(port),
                        ],
                        {"BENCH_KAFKA": kafka},
                        port,
                        lambda _url: None,
                        args,
                        Path(tmp),
                    )
                )
                continue
            if name == "floor-postgres":
                with postgres_database("bench_ingest") as url:
                    results.append(floor_target(name, url, port, args, Path(tmp)))
            elif name == "hub-postgres":
                with postgres_database("bench_ingest") as url:
                    results.append(hub_target(name, url, kafka, port, args, Path(tmp)))
            else:
                data = Path(tmp) / name
                data.mkdir()
                results.append(
                    hub_target(name, f"sqlite:///{data / 'hub.db'}", kafka, port, args, data)
                )
    by = {r["target"]: r for r in results}
    ratios: dict[str, float] = {}
    for hub_name in ("floor-postgres", "hub-sqlite", "hub-postgres"):
        for base in ("bare", "direct-kafka"):
            if hub_name in by and base in by and by[base]["per_second"]:
                ratios[f"{hub_name}/{base}"] = by[hub_name]["per_second"] / by[base]["per_second"]
    if "hub-postgres" in by and "floor-postgres" in by and by["floor-postgres"]["per_second"]:
        ratios["hub-postgres/floor-postgres"] = (
            by["hub-postgres"]["per_second"] / by["floor-postgres"]["per_second"]
        )
    table(
        f"ingest: closed loop, {args.concurrency} concurrent clients ({args.client}, "
        f"{args.generators} generator processes), {args.duration:.0f} s",
        [
            "target",
            "accepted/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "gen CPU %",
            "server CPU %",
            "server CPU ms/referral",
            "PostgreSQL CPU ms/referral",
            "machine CPU %",
            "SQL statements/referral",
        ],
        [
            [
                r["target"],
                r["per_second"],
                r["p50_ms"],
                r["p99_ms"],
                sum(r["errors"].values()),
                "+".join(str(c) for c in r["generator_cpu_percent"]),
                r["server_cpu_percent"],
                r.get("server_cpu_ms_per_request"),
                r.get("postgres_cpu_ms_per_request"),
                r.get("machine_cpu_percent"),
                r.get("statements_per_referral"),
            ]
            for r in results
        ],
    )
    table("ingest ratios (throughput)", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    write_result(
        "ingest",
        {
            "concurrency": args.concurrency,
            "generators": args.generators,
            "client": args.client,
            "duration_s": args.duration,
            "results": results,
            "ratios": ratios,
        },
    )


def floor_target(
    name: str, url: str, port: int, args: argparse.Namespace, data: Path
) -> dict[str, Any]:
    """The hub's durable work hand-rolled (tests.benchmarks.floor_app), on the hub's schema."""
    hub, _partners = make_hub(url, data)
    hub.engine.dispose()
    token = secrets.token_urlsafe(32)
    env = {"BENCH_DATABASE": url.replace("+psycopg", ""), "BENCH_TOKEN": token}
    workers = args.gateway_workers or os.cpu_count() or 1
    module = ["-m", "tests.benchmarks.floor_app", "--port", str(port), "--workers", str(workers)]
    return run_target(name, module, env, port, lambda _url: token, args, data)


def hub_target(
    name: str, url: str, kafka: str, port: int, args: argparse.Namespace, data: Path
) -> dict[str, Any]:
    hub, partners = make_hub(url, data, kafka_bootstrap_servers=kafka)
    hub.engine.dispose()
    env = {
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(data),
        "HUB_KAFKA_BOOTSTRAP_SERVERS": kafka,
        "HUB_HTTP_PORT": str(port),
        "HUB_LOG_LEVEL": "WARNING",
        # The default 1,200 calls per partner and minute would cap the run at 20/s.
        "HUB_RATE_LIMIT_API_PER_MINUTE": "100000000",
        "HUB_RATE_LIMIT_API_PER_DAY": "100000000",
    }

    if args.gateway_workers:
        env["HUB_GATEWAY_WORKERS"] = str(args.gateway_workers)

    def token_of(base: str) -> str:
        with httpx.Client(base_url=base) as client:
            return partners.token(client, "ude")

    result = run_target(name, ["-m", "hub", "gateway"], env, port, token_of, args, data)
    result["statements_per_referral"] = statements_per_referral(hub, partners)
    hub.engine.dispose()
    print(f"{name}: {result['statements_per_referral']} SQL statements per referral", flush=True)
    return result


if __name__ == "__main__":
    main()
