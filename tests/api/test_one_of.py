"""``one_of``: ``IN`` on SQLite, ``= ANY(array)`` on PostgreSQL, with the same answers, and on
PostgreSQL one statement text whatever the number of values."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, event, select

from hub.db import make_engine, one_of


def test_one_of_finds_what_in_finds_with_one_statement_text(database_url: str) -> None:
    engine = make_engine(database_url)
    metadata = MetaData()
    things = Table(
        "one_of_things",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
    )
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(things.insert(), [{"id": i, "name": f"n{i}"} for i in range(1, 401)])
        dialect = engine.dialect.name
        event.listen(engine, "before_cursor_execute", capture)
        with engine.connect() as conn:
            for wanted in ([7], [3, 5, 399, 1000], list(range(50, 350)), []):
                by_one_of = conn.scalars(
                    select(things.c.id).where(one_of(things.c.id, wanted, dialect))
                ).all()
                by_in = conn.scalars(select(things.c.id).where(things.c.id.in_(wanted))).all()
                assert sorted(by_one_of) == sorted(by_in) == [i for i in wanted if i <= 400]
            names = conn.scalars(
                select(things.c.name).where(one_of(things.c.name, {"n1", "n2", "x"}, dialect))
            ).all()
            assert sorted(names) == ["n1", "n2"]
        event.remove(engine, "before_cursor_execute", capture)
        if dialect == "postgresql":
            texts = {s for s in sent[::2][:4]}  # one_of's statements (every other one)
            assert len(texts) == 1, texts
            assert "ANY" in next(iter(texts))
    finally:
        metadata.drop_all(engine)
        engine.dispose()
