"""Run every benchmark in turn (``make bench``); each prints its table and writes its JSON.

    .venv/bin/python -m tests.benchmarks.all [--quick] [--only ingest,timeline_query]

Results go to ``tests/benchmarks/results/`` (``BENCH_RESULTS_DIR`` overrides). ``--quick``
runs each with small sizes (a smoke run of a minute or two; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from tests.benchmarks.common import ROOT

FULL: dict[str, list[str]] = {
    "ingest": ["--concurrency", "16", "--duration", "15"],
    "ingest_one_worker": [
        *("--concurrency", "16", "--duration", "15"),
        *("--gateway-workers", "1", "--targets", "floor-postgres,hub-postgres"),
    ],
    "timeline_query": ["--entries", "1000000", "--runs", "300"],
    "consumers": ["--events", "4000"],
    "end_to_end": ["--rates", "10,100,300,500", "--duration", "10"],
    "scale": ["--events", "20000", "--partitions", "12", "--scale", "1,2,4"],
    "audit": ["--leaves", "100000", "--batch", "10000"],
}
QUICK: dict[str, list[str]] = {
    "ingest": ["--concurrency", "4", "--duration", "2", "--warmup", "1"],
    "ingest_one_worker": [
        *("--concurrency", "4", "--duration", "2", "--warmup", "1"),
        *("--gateway-workers", "1", "--targets", "floor-postgres,hub-postgres"),
    ],
    "timeline_query": ["--entries", "20000", "--runs", "20"],
    "consumers": ["--events", "1000"],
    "end_to_end": ["--rates", "20", "--duration", "3", "--drain", "30"],
    "scale": ["--events", "500", "--partitions", "12", "--scale", "1,2", "--join-wait", "6"],
    "audit": ["--leaves", "5000", "--batch", "1000"],
}
MODULES = {
    "ingest": "bench_ingest",
    "ingest_one_worker": "bench_ingest",
    "timeline_query": "bench_timeline_query",
    "consumers": "bench_consumers",
    "end_to_end": "bench_end_to_end",
    "scale": "bench_consumers",
    "audit": "bench_audit",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(FULL), help="comma-separated, in this order")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    failed = []
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for name in args.only.split(","):
        print(f"\n=== {name} ===", flush=True)
        began = time.perf_counter()
        cmd = [sys.executable, "-m", f"tests.benchmarks.{MODULES[name]}", *plan[name]]
        print(" ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
            failed.append(name)
        print(f"({name}: {time.perf_counter() - began:.0f} s)", flush=True)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
