"""Benchmark: what the embedded broker's CPU per record does as its log grows.

    .venv/bin/python -m tests.benchmarks.bench_broker_log [--rate 200] [--mode consume]

One embedded broker, one topic of ``--partitions`` partitions, an idempotent producer sending
``--rate`` records a second of 1.5 KB each, one acknowledged record at a time (as the relay
sends at low rates: each record its own batch). ``--mode consume``: a group consumer reads
them as they come (10 ms fetch wait, the push delivery's) and commits after every poll, as
the hub's consumers do; ``produce``: nobody reads; ``idle``: the log is written first, then a
consumer at its end fetches with nothing new to read. Reported per window of ``--window``
seconds: the broker process's CPU per record produced (or per second, when idle).

The embedded broker keeps its log in memory. Apache Kafka, which production runs, finds a
fetch's offset in its index, whatever the length of the log.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from hub.kafka.client import ensure_topics, make_consumer, make_producer
from hub.kafka.embedded import EmbeddedBroker
from tests.benchmarks.common import cpu_seconds, table, write_result

TOPIC = "bench.log"


def _produce(producer: Any, rate: float, stop: threading.Event, sent: list[int]) -> None:
    due = time.perf_counter()
    while not stop.is_set():
        producer.send(TOPIC, key=str(sent[0]).encode(), value=b"x" * 1500).get(timeout=30)
        sent[0] += 1
        due += 1 / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)


def _joined(consumer: Any) -> None:
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise SystemExit("the consumer was not assigned its partitions within 30 s")
        consumer.poll(timeout_ms=100)


def run(args: argparse.Namespace) -> list[dict[str, float]]:
    windows: list[dict[str, float]] = []
    with EmbeddedBroker() as broker:
        assert broker.pid is not None
        ensure_topics(broker.bootstrap_servers, {TOPIC: args.partitions})
        producer = make_producer(broker.bootstrap_servers, client_id="bench.log")
        consumer = None
        if args.mode != "produce":
            consumer = make_consumer(
                broker.bootstrap_servers, group_id="bench.log", topics=[TOPIC], fetch_max_wait_ms=10
            )
            _joined(consumer)
        stop, sent = threading.Event(), [0]
        if args.mode == "idle":
            _produce_for(producer, args, sent)
            while consumer is not None and consumer.poll(timeout_ms=500):
                pass  # to the end of the log
        else:
            threading.Thread(
                target=_produce, args=(producer, args.rate, stop, sent), daemon=True
            ).start()
        began = time.monotonic()
        mark, cpu, count = began, cpu_seconds(broker.pid), sent[0]
        try:
            while time.monotonic() - began < args.seconds:
                if consumer is not None:
                    records = consumer.poll(timeout_ms=500)
                    if records:
                        consumer.commit()
                else:
                    time.sleep(0.5)
                if time.monotonic() - mark < args.window:
                    continue
                now, used = time.monotonic(), cpu_seconds(broker.pid)
                produced = sent[0] - count
                windows.append(
                    {
                        "until_s": round(now - began, 1),
                        "records_in_log": sent[0],
                        "broker_ms_per_s": round(1000 * (used - cpu) / (now - mark), 1),
                        "broker_ms_per_record": (
                            round(1000 * (used - cpu) / produced, 3) if produced else 0.0
                        ),
                    }
                )
                mark, cpu, count = now, used, sent[0]
        finally:
            stop.set()
            if consumer is not None:
                consumer.close(autocommit=False)
            producer.close(timeout=5)
    return windows


def _produce_for(producer: Any, args: argparse.Namespace, sent: list[int]) -> None:
    stop = threading.Event()
    threading.Timer(args.seconds, stop.set).start()
    _produce(producer, args.rate, stop, sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="records per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--mode", choices=["consume", "produce", "idle"], default="consume")
    args = parser.parse_args()
    windows = run(args)
    table(
        f"embedded broker, {args.mode}, {args.rate:.0f} records/s, {args.partitions} partitions",
        ["until s", "records in log", "broker CPU ms/s", "broker CPU ms/record"],
        [list(w.values()) for w in windows],
    )
    write_result(f"broker_log_{args.mode}", {"args": vars(args), "windows": windows})


if __name__ == "__main__":
    main()
