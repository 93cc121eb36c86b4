"""Settling and re-sending cost what is unsettled, not what the outbox holds: with a long
history of settled rows and of the consumers' marks, every statement goes through the index
of unsettled rows, and the marks of the unsettled rows' events are found by their event ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from hub.db import unit_of_work
from hub.outbox.settlement import Settler, meet_broker, oldest_unsettled
from tests.hubtest import make_hub

HISTORY = 50_000


def _history(session: Session, dialect: str) -> None:
    """A long history of settled rows, then a few published but unsettled ones."""
    rows = (
        "SELECT i FROM generate_series(1, :n) AS i"
        if dialect == "postgresql"
        else "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
        "SELECT i FROM s"
    )
    insert = (
        "INSERT INTO outbox (event_id, topic, headers, value, created_at, published_at, "
        "settled_at, replay) SELECT 'e' || CAST(i AS TEXT), 'hub.events.v1', '[]', '{}', "
        ":at, :at, SETTLED, 0 FROM (ROWS) AS t"
    )
    at = "2026-01-01T00:00:00+00:00" if dialect == "sqlite" else "2026-01-01 00:00:00+00"
    insert = insert.replace("ROWS", rows)
    session.execute(text(insert.replace("SETTLED", ":at")), {"n": HISTORY, "at": at})
    unsettled = insert.replace("SETTLED", "NULL").replace("'e' ||", "'u' ||")
    session.execute(text(unsettled), {"n": 5, "at": at})
    # The marks kept for months: every settled event applied by each of its consumers.
    marks = (
        "INSERT INTO processed_events (consumer, event_id, processed_at) "
        "SELECT c.name, 'e' || CAST(i AS TEXT), :at FROM (ROWS) AS t CROSS JOIN "
        "(SELECT 'router' AS name UNION ALL SELECT 'timeline' UNION ALL SELECT 'deadlines') AS c"
    )
    session.execute(text(marks.replace("ROWS", rows)), {"n": HISTORY, "at": at})
    session.execute(
        text("INSERT INTO broker_epoch (id, epoch, met_at) VALUES (1, 'old', :at)"), {"at": at}
    )
    if dialect == "postgresql":
        session.execute(text("ANALYZE outbox"))
        session.execute(text("ANALYZE processed_events"))


def test_settling_and_resending_read_only_the_unsettled_rows(
    database_url: str, tmp_path: Path
) -> None:
    hub, _ = make_hub(database_url, tmp_path)
    dialect = hub.engine.dialect.name
    with unit_of_work(hub.session_factory) as session:
        _history(session, dialect)

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if (
            "outbox" in statement or "processed_events" in statement
        ) and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            statements.append((statement, params))

    event.listen(hub.engine, "before_cursor_execute", capture)
    try:
        Settler(hub.session_factory, hub.settings).settle()
        with unit_of_work(hub.session_factory) as session:
            assert oldest_unsettled(session) is not None
            assert meet_broker(session, "new") == 5
    finally:
        event.remove(hub.engine, "before_cursor_execute", capture)

    assert len(statements) >= 4
    assert any("processed_events" in statement for statement, _ in statements)
    with hub.engine.connect() as conn:
        for statement, params in statements:
            prefix = "EXPLAIN " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = "\n".join(
                str(row[-1]) for row in conn.exec_driver_sql(prefix + statement, params)
            )
            # The waiting rows' headers are then read by their ids, through the primary key.
            by_id = "outbox.id IN" in statement and ("PRIMARY KEY" in plan or "pk_outbox" in plan)
            if "FROM processed_events" in statement:
                assert "ix_processed_events_event_id" in plan, (statement, plan)
                continue
            assert "ix_outbox_unsettled" in plan or by_id, (statement, plan)
            assert "Seq Scan on outbox" not in plan, (statement, plan)
    hub.engine.dispose()
