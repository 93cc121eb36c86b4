"""Benchmark: events per second through the router, timeline and deadline consumers vs raw
kafka-python.

    .venv/bin/python -m tests.benchmarks.bench_consumers [--events 5000] [--sqlite]
    .venv/bin/python -m tests.benchmarks.bench_consumers --scale 1,2,4 --partitions 12

Prepares ``--events`` real ``referral.requested`` events (through hub.referrals.service and the
outbox relay) on the events topic of an embedded broker, then measures, one at a time on the
same records:

* ``raw``: a kafka-python group consumer (``make_consumer``) polling the records, nothing else
  (three runs, each in a new group; the median is reported);
* ``router`` / ``timeline`` / ``deadlines``: ``hub consume <name>`` as its own process
  (decode, dedup check, handler, processed mark, one transaction per poll, offset commit per
  poll).

Rates run from the first record seen to the last, so group join is left out. ``--scale``
instead copies the records to a fresh ``--partitions`` topic per run and measures 1, 2, 4 …
timeline consumer processes in one group (started and joined before the records arrive).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, text

from hub.db import unit_of_work
from hub.events.models import ProcessedEvent
from hub.kafka.client import ensure_topics, make_consumer, make_producer
from hub.kafka.embedded import EmbeddedBroker
from hub.outbox.models import OutboxEvent
from hub.partners.models import Partner
from hub.referrals import service
from hub.runtime import build_relay, start_thread, topic_plan
from schemas.messages import ReferralCreate
from tests.benchmarks.common import (
    cpu_seconds,
    postgres_available,
    postgres_database,
    spawn,
    stop,
    table,
    write_result,
)
from tests.hubtest import STUDENT_REFERRAL, make_hub


def generate(hub: Any, n: int, batch: int = 200) -> None:
    """``n`` referrals from ude to amt, each with its outbox event."""
    tag = uuid.uuid4().hex[:6]
    for first in range(0, n, batch):
        with unit_of_work(hub.session_factory) as session:
            ude = session.get(Partner, "ude")
            for i in range(first, min(n, first + batch)):
                body = dict(STUDENT_REFERRAL)
                body["person"] = {**body["person"], "partner_reference": f"ES{tag}{i:08d}"}
                service.request_referral(
                    session,
                    body=ReferralCreate.model_validate(body),
                    by=ude,
                    catalogue=hub.catalogue,
                    policy=hub.policy,
                    settings=hub.settings,
                )
    unrouted(hub)


def unrouted(hub: Any) -> None:
    """Take back the routing done at acceptance, so that the router has its work to measure:
    the performers' copies go, and the events lose their ``routed`` mark."""
    with unit_of_work(hub.session_factory) as session:
        session.execute(delete(OutboxEvent).where(OutboxEvent.topic != hub.settings.topic_events))
        for row in session.scalars(select(OutboxEvent)):
            row.headers = [h for h in row.headers if h[0] != "ce_routed"]


def publish(hub: Any, timeout: float = 300) -> None:
    """Run the relay until the outbox is empty."""
    halt = threading.Event()
    thread = start_thread("relay", build_relay(hub).run, halt)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with hub.session_factory() as session:
                left = session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                )
            if not left:
                return
            time.sleep(0.2)
        raise RuntimeError("relay did not drain the outbox")
    finally:
        halt.set()
        thread.join(timeout=15)


@contextmanager
def prepared(args: argparse.Namespace, tmp: Path, broker: EmbeddedBroker) -> Iterator[Any]:
    """A hub with ``args.events`` events on its events topic; yields (hub, env)."""

    def build(url: str) -> Any:
        hub, _ = make_hub(
            url,
            tmp,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            events_partitions=args.partitions,
        )
        ensure_topics(broker.bootstrap_servers, topic_plan(hub))
        began = time.perf_counter()
        generate(hub, args.events)
        publish(hub)
        print(f"prepared {args.events} events in {time.perf_counter() - began:.1f} s", flush=True)
        env = {
            "HUB_DATABASE_URL": url,
            "HUB_DATA_DIR": str(tmp),
            "HUB_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_EVENTS_PARTITIONS": str(args.partitions),
        }
        return hub, env

    if args.sqlite:
        hub, env = build(f"sqlite:///{tmp / 'hub.db'}")
        yield hub, env
        hub.engine.dispose()
        return
    with postgres_database("bench_consumers") as url:
        hub, env = build(url)
        try:
            yield hub, env
        finally:
            hub.engine.dispose()


def raw_rate(kafka: str, topic: str, n: int, timeout: float = 300) -> dict[str, Any]:
    consumer = make_consumer(kafka, group_id=f"bench.raw.{uuid.uuid4().hex[:8]}", topics=[topic])
    seen = first = 0
    t_first = 0.0
    cpu0 = time.process_time()
    deadline = time.monotonic() + timeout
    try:
        while seen < n and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            got = sum(len(records) for records in batch.values())
            if got and not seen:
                t_first, first = time.perf_counter(), got
                cpu0 = time.process_time()
            seen += got
        t_end = time.perf_counter()
    finally:
        consumer.close()
    if seen < n:
        raise RuntimeError(f"raw consumer saw only {seen} of {n}")
    took = t_end - t_first
    return {
        "events": n,
        "seconds": round(took, 3),
        "per_second": (n - first) / took if took > 0 else float("nan"),
        "cpu_percent": [round(100 * (time.process_time() - cpu0) / took) if took > 0 else 0],
    }


def processed(hub: Any, name: str) -> int:
    with hub.session_factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ProcessedEvent)
                .where(ProcessedEvent.consumer == name)
            )
            or 0
        )


def runner_rate(
    hub: Any,
    env: dict[str, str],
    name: str,
    n: int,
    *,
    processes: int = 1,
    log_dir: Path,
    before_count: Any = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """``processes`` times ``hub consume name``; rate from the first processed event to the n-th."""
    procs = [
        spawn(["-m", "hub", "consume", name], env=env, log=log_dir / f"{name}-{i}.log")
        for i in range(processes)
    ]
    try:
        if before_count is not None:
            before_count()
        deadline = time.monotonic() + timeout
        count = processed(hub, name)
        while count == 0 and time.monotonic() < deadline:
            _fail_if_exited(procs, name, log_dir)
            time.sleep(0.02)
            count = processed(hub, name)
        t_first, c_first = time.perf_counter(), count
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        while count < n and time.monotonic() < deadline:
            _fail_if_exited(procs, name, log_dir)
            time.sleep(0.05)
            count = processed(hub, name)
        took = time.perf_counter() - t_first
        cpu = [
            round(100 * (cpu_seconds(p.pid) - c) / took) for p, c in zip(procs, cpu0, strict=True)
        ]
    finally:
        for p in procs:
            stop(p)
    if count < n:
        _print_log_tails(name, processes, log_dir)
        raise RuntimeError(f"{name}: only {count} of {n} processed")
    return {
        "events": n,
        "processes": processes,
        "seconds": round(took, 3),
        "per_second": (n - c_first) / took,
        "cpu_percent": cpu,
    }


def _fail_if_exited(procs: list[Any], name: str, log_dir: Path) -> None:
    if any(p.poll() is not None for p in procs):
        _print_log_tails(name, len(procs), log_dir)
        raise RuntimeError(f"{name} consumer exited")


def _print_log_tails(name: str, processes: int, log_dir: Path) -> None:
    # The logs go with the temporary directory: what the processes said is printed here.
    for i in range(processes):
        lines = (log_dir / f"{name}-{i}.log").read_text(errors="replace").splitlines()
        print(f"--- last lines of {name}-{i}.log:", *lines[-15:], sep="\n", flush=True)


def copy_topic(kafka: str, src: str, dst: str, n: int) -> None:
    """Copy ``n`` records (key, value, headers) from ``src`` to ``dst``."""
    consumer = make_consumer(kafka, group_id=f"bench.copy.{uuid.uuid4().hex[:8]}", topics=[src])
    producer = make_producer(kafka, client_id="bench.copy")
    seen = 0
    try:
        while seen < n:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    producer.send(dst, key=r.key, value=r.value, headers=list(r.headers or []))
                    seen += 1
        producer.flush(timeout=60)
    finally:
        consumer.close()
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--partitions", type=int, default=6, help="of the events topic")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--scale", default=None, help="e.g. 1,2,4: timeline consumer processes")
    parser.add_argument("--join-wait", type=float, default=10.0, help="seconds, with --scale")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if not args.sqlite and not postgres_available():
        print("PostgreSQL not reachable: using SQLite")
        args.sqlite = True
    db = "SQLite" if args.sqlite else "PostgreSQL"
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        kafka = broker.bootstrap_servers
        with prepared(args, Path(tmp), broker) as (hub, env):
            topic = hub.settings.topic_events
            if args.scale:
                scale(args, hub, env, kafka, topic, Path(tmp), db)
                return
            raws = sorted(
                (raw_rate(kafka, topic, args.events) for _ in range(3)),
                key=lambda r: r["per_second"],
            )
            results = {
                "raw kafka-python": {**raws[1], "runs_per_second": [r["per_second"] for r in raws]}
            }
            for name in ("router", "timeline", "deadlines"):
                results[name] = runner_rate(hub, env, name, args.events, log_dir=Path(tmp))
    raw = results["raw kafka-python"]["per_second"]
    for r in results.values():
        r["ratio_to_raw"] = r["per_second"] / raw
    table(
        f"consumers: {args.events:,} referral.requested events, {args.partitions} partitions, "
        f"{db}, one process each",
        ["consumer", "events/s", "x raw", "seconds", "CPU %"],
        [
            [
                name,
                r["per_second"],
                r["ratio_to_raw"],
                r["seconds"],
                "+".join(map(str, r["cpu_percent"])),
            ]
            for name, r in results.items()
        ],
    )
    write_result(
        "consumers",
        {"events": args.events, "partitions": args.partitions, "database": db, "results": results},
    )


def scale(
    args: argparse.Namespace,
    hub: Any,
    env: dict[str, str],
    kafka: str,
    topic: str,
    log_dir: Path,
    db: str,
) -> None:
    results: list[dict[str, Any]] = []
    for k in (int(x) for x in args.scale.split(",")):
        dst = f"bench.scale.{k}.{uuid.uuid4().hex[:6]}"
        ensure_topics(kafka, {dst: args.partitions})
        with unit_of_work(hub.session_factory) as session:
            session.execute(text("DELETE FROM processed_events WHERE consumer = 'timeline'"))
            session.execute(text("DELETE FROM timeline_entries"))

        def fill(dst: str = dst) -> None:
            time.sleep(args.join_wait)  # let every process join the group first
            copy_topic(kafka, topic, dst, args.events)

        # Each step in a group of its own. The embedded broker (Tansu 0.6) can keep a group
        # whose leader left during a rebalance in that generation, naming the gone leader:
        # the next step's members then wait as followers for its assignment: 86 s in one
        # run, about three minutes in another (docs/performance.md). Apache Kafka elects a
        # new leader.
        r = runner_rate(
            hub,
            {**env, "HUB_TOPIC_EVENTS": dst, "HUB_KAFKA_GROUP_PREFIX": f"bench-scale-{k}"},
            "timeline",
            args.events,
            processes=k,
            log_dir=log_dir,
            before_count=fill,
        )
        print(f"{k} process(es): {r['per_second']:.0f}/s cpu={r['cpu_percent']}", flush=True)
        results.append(r)
    one = results[0]["per_second"]
    table(
        f"scale: timeline consumer, {args.events:,} events over {args.partitions} partitions, {db}",
        ["processes", "events/s", "x 1 process", "CPU % per process"],
        [
            [
                r["processes"],
                r["per_second"],
                r["per_second"] / one,
                "+".join(map(str, r["cpu_percent"])),
            ]
            for r in results
        ],
    )
    write_result(
        "scale",
        {"events": args.events, "partitions": args.partitions, "database": db, "results": results},
    )


if __name__ == "__main__":
    main()
