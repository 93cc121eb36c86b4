"""Benchmark: the audit log's sequencer and verifier, on SQLite and PostgreSQL.

    .venv/bin/python -m tests.benchmarks.bench_audit [--leaves 100000] [--batch 10000]

Appends ``leaves`` records (``hub.audit.service.record``, 500 per transaction), then times
the sequencer numbering all of them in batches and signing one checkpoint per batch
(``leaves/s``), ``hub audit verify``'s rebuild of the tree, the first inclusion proof of the
process and the median of 20 more. What limits each: the sequencer reads each waiting row,
hashes its canonical JSON and writes its index and hash back (an executemany of UPDATEs);
verify reads and hashes every leaf; the first proof reads and hashes every leaf into the
process's block roots (hub.audit.subtrees), later ones hash only those.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from hub.audit.sequencer import Sequencer
from hub.audit.service import record
from hub.audit.verify import prove, verify
from hub.db import unit_of_work
from tests.benchmarks.common import postgres_available, postgres_database, table, write_result
from tests.hubtest import make_hub


def run(url: str, data_dir: Path, *, leaves: int, batch: int) -> dict[str, Any]:
    """Append, sequence, verify and prove on one database; the figures."""
    hub, _ = make_hub(url, data_dir)
    began = time.perf_counter()
    for start in range(0, leaves, 500):
        with unit_of_work(hub.session_factory) as session:
            for i in range(start, min(start + 500, leaves)):
                details = {"route": "/v1/referrals", "i": i}
                record(session, actor_type="partner", actor="ude", action="api.call",
                       person_id=f"p_{i % 997}", details=details)  # fmt: skip
    appended = time.perf_counter() - began
    sequencer = Sequencer(session_factory=hub.session_factory, origin="bench/audit", interval=1)
    sequencer.batch_size = batch
    began, numbered = time.perf_counter(), 0
    while (step := sequencer.step()).leaves:
        numbered += step.leaves
    sequenced = time.perf_counter() - began
    with hub.session_factory() as session:
        began = time.perf_counter()
        report = verify(session)
        verified = time.perf_counter() - began
        began = time.perf_counter()
        prove(session, leaf_index=leaves // 2)
        proved = time.perf_counter() - began
        warm = []
        for leaf in random.Random(7).sample(range(leaves), 20):
            began = time.perf_counter()
            prove(session, leaf_index=leaf)
            warm.append(time.perf_counter() - began)
    assert report.ok and numbered == leaves, report.problems
    hub.engine.dispose()
    return {
        "leaves": leaves,
        "append_per_s": leaves / appended,
        "sequencer_leaves_per_s": leaves / sequenced,
        "verify_leaves_per_s": leaves / verified,
        "prove_first_ms": proved * 1000,
        "prove_warm_ms": statistics.median(warm) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = run(
            f"sqlite:///{tmp}/hub.db", Path(tmp), leaves=args.leaves, batch=args.batch
        )
    if postgres_available():
        with tempfile.TemporaryDirectory() as tmp, postgres_database("bench_audit") as url:
            results["postgresql"] = run(url, Path(tmp), leaves=args.leaves, batch=args.batch)
    rows = [
        [db, r["leaves"], r["append_per_s"], r["sequencer_leaves_per_s"],
         r["verify_leaves_per_s"], r["prove_first_ms"], r["prove_warm_ms"]]
        for db, r in results.items()
    ]  # fmt: skip
    table(
        f"Audit log: {args.leaves} leaves, sequencer batches of {args.batch}",
        ["database", "leaves", "append/s (500 per tx)", "sequencer leaves/s",
         "verify leaves/s", "first proof ms", "proof ms, warm (median of 20)"],
        rows,
    )  # fmt: skip
    write_result("audit", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
