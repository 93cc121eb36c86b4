"""Benchmark: the staff name search over the blind index of 100,000 people.

    .venv/bin/python -m tests.benchmarks.bench_search [--people 100000] [--queries 300]

For each database (PostgreSQL in a fresh database ``bench_search``, SQLite in a temporary
file) it writes ``people`` rows and their index rows in bulk (the digests computed by
``hub.people.index.index_entries`` under the hub's blind index key, as a referral would).
Names are drawn with a skewed distribution from mixed German, Turkish, Arabic, Ukrainian,
Polish and Chinese name lists, so common names (Müller, Li, Kaya) have thousands of
bearers, as they would. Then it times ``hub.people.index.search`` (the staff page's query,
200 candidates) for queries of three shapes: family name, given + family name, family name
+ birth date, each in a new session. The plan of one query is printed (EXPLAIN).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from hub.db import table_of, unit_of_work
from hub.people import index
from hub.people.models import Person, PersonIndexEntry
from hub.people.names import parse_query
from tests.benchmarks.common import (
    percentile,
    postgres_available,
    postgres_database,
    table,
    write_result,
)
from tests.hubtest import make_hub

GIVEN = (  # noqa: SIM905 - a list of names reads better as text
    "Anna Maria Lukas Leon Emma Mia Paul Elias Mehmet Ayşe Fatma Mustafa Emre Zeynep Mohammed"
    " Ahmad Fatima Omar Layla Olena Oleksandr Iryna Andrii Natalia Łucja Piotr Katarzyna Wei"
    " Jing Li Hui Xin Arjun Priya Ravi Ana João Sofia Hans-Peter Anna-Lena Jürgen Björn"
).split()
FAMILY = (  # noqa: SIM905
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Meier Mayer"
    " Y\u0131lmaz Kaya Demir Şahin Çelik Öztürk Al-Hassan Haddad Khalil Nasser Шевченко Коваленко"
    " Бондаренко Ткаченко Kowalski Nowak Wiśniewski Wang Li Zhang Liu Chen Sharma Patel"
    " Silva Santos Müller-Lüdenscheidt Schäfer Köhler"
).split()
BATCH = 10_000


def skewed(rng: random.Random, names: list[str]) -> str:
    """Name i drawn with weight 1/(i+1) (Zipf), so a few names are very common."""
    return rng.choices(names, weights=[1 / (i + 1) for i in range(len(names))])[0]


def people(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = date(1960, 1, 1)
    return [
        {
            "id": f"p_bench{i:08d}",
            "given": skewed(rng, GIVEN),
            "family": skewed(rng, FAMILY),
            "born": (start + timedelta(days=rng.randrange(45 * 365))).isoformat(),
        }
        for i in range(n)
    ]


def fill(hub: Any, crowd: list[dict[str, Any]]) -> float:
    began = time.perf_counter()
    with unit_of_work(hub.session_factory) as session:
        for at in range(0, len(crowd), BATCH):
            part = crowd[at : at + BATCH]
            session.execute(insert(table_of(Person)), [{"id": p["id"]} for p in part])
            rows = [
                {"person_id": p["id"], "kind": kind, "digest": d}
                for p in part
                for kind, d in index.index_entries(
                    session, given_name=p["given"], family_name=p["family"], birth_date=p["born"]
                )
            ]
            session.execute(insert(table_of(PersonIndexEntry)), rows)
    with hub.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - began


def queries(crowd: list[dict[str, Any]], count: int) -> list[tuple[str, str]]:
    rng = random.Random(11)
    out = []
    for i in range(count):
        p = rng.choice(crowd)
        d = date.fromisoformat(p["born"])
        shape = ("family", "given family", "family + birth date")[i % 3]
        text_ = {
            "family": p["family"],
            "given family": f"{p['given']} {p['family']}",
            "family + birth date": f"{p['family']} {d:%d.%m.%Y}",
        }[shape]
        out.append((shape, text_))
    return out


def run(hub: Any, crowd: list[dict[str, Any]], count: int) -> dict[str, Any]:
    filled = fill(hub, crowd)
    timings: dict[str, list[float]] = {}
    found: dict[str, list[int]] = {}
    for shape, q in queries(crowd, count):
        with hub.session_factory() as session:
            began = time.perf_counter()
            hits = index.search(session, query=parse_query(q), limit=200)
            timings.setdefault(shape, []).append((time.perf_counter() - began) * 1000)
            found.setdefault(shape, []).append(len(hits))
    rows = {
        shape: {
            "queries": len(ms),
            "p50_ms": round(percentile(ms, 50), 2),
            "p99_ms": round(percentile(ms, 99), 2),
            "median_hits": percentile(found[shape], 50),
        }
        for shape, ms in timings.items()
    }
    return {"fill_s": round(filled, 1), "shapes": rows, "plan": plan(hub, crowd[0])}


def plan(hub: Any, person: dict[str, Any]) -> str:
    with hub.session_factory() as session:
        stmt = index.search_statement(
            session, query=parse_query(f"{person['family']} {person['given']}"), limit=200
        )
        compiled = stmt.compile(hub.engine)
        params: Any = compiled.params
        if hub.engine.dialect.name == "sqlite":
            prefix = "EXPLAIN QUERY PLAN "
            params = tuple(params[name] for name in compiled.positiontup or ())
        else:
            prefix = "EXPLAIN "
        rows = session.connection().exec_driver_sql(prefix + str(compiled), params).all()
    return "\n".join(" ".join(str(c) for c in r) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    crowd = people(args.people)
    results: dict[str, Any] = {"people": args.people}
    with tempfile.TemporaryDirectory() as tmp:
        hub, _ = make_hub(f"sqlite:///{Path(tmp) / 'hub.db'}", Path(tmp))
        results["sqlite"] = run(hub, crowd, args.queries)
        hub.engine.dispose()
    if postgres_available():
        with postgres_database("bench_search") as url, tempfile.TemporaryDirectory() as tmp:
            hub, _ = make_hub(url, Path(tmp))
            results["postgresql"] = run(hub, crowd, args.queries)
            hub.engine.dispose()
    for db in ("sqlite", "postgresql"):
        if db not in results:
            continue
        r = results[db]
        table(
            f"name search, {args.people:,} people, {db} (fill {r['fill_s']} s)",
            ["query", "n", "p50 ms", "p99 ms", "median hits"],
            [
                [s, v["queries"], v["p50_ms"], v["p99_ms"], v["median_hits"]]
                for s, v in r["shapes"].items()
            ],
        )
        print(f"plan ({db}):\n{r['plan']}\n")
    write_result("search", results)


if __name__ == "__main__":
    main()
