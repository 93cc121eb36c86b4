"""Settling and re-sending cost what is unsettled, not what the outbox holds: with a long
history of settled rows and of the consumers' marks, every statement goes through the index
of unsettled rows, and the marks of the unsettled rows' events are found by their event ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.orm import Session

from hub.db import unit_of_work, utcnow
from hub.events.service import mark_processed
from hub.outbox import settlement
from hub.outbox.models import OutboxEvent
from hub.outbox.settlement import (
    EVENT_CONSUMERS,
    OWED_FIRST_SECONDS,
    OWED_MOST_SECONDS,
    ROUND_SECONDS,
    Settler,
    meet_broker,
    oldest_unsettled,
)
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


def _outbox_row(session: Session, event_id: str, *, published: bool) -> int:
    at = utcnow()
    row = OutboxEvent(
        event_id=event_id,
        topic="hub.events.v1",
        headers=[],
        value="{}",
        created_at=at,
        published_at=at if published else None,
        replay=0,
    )
    session.add(row)
    session.flush()
    return row.id


def test_a_row_owed_for_long_is_looked_at_ever_less_often_and_a_late_row_in_the_next_round(
    database_url: str, tmp_path: Path
) -> None:
    """The rows of a stopped consumer's backlog are looked at after 1, 2, 4, 8 and then every
    10 seconds, not on every pass; a row published behind one already met (another relay's)
    is met when the settler starts its next round."""
    hub, _ = make_hub(database_url, tmp_path)
    with unit_of_work(hub.session_factory) as session:
        late = _outbox_row(session, "late", published=False)
        for n in range(3):
            _outbox_row(session, f"owed-{n}", published=True)
    looks: list[float] = []
    now = [100.0]

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM processed_events" in statement:
            looks.append(now[0])

    settler = Settler(hub.session_factory, hub.settings, clock=lambda: now[0])
    event.listen(hub.engine, "before_cursor_execute", capture)
    try:
        for _ in range(500):  # 50 s in passes a tenth of a second apart
            assert settler.settle() == 0
            now[0] = round(now[0] + 0.1, 1)
        # The consumers never applied them: looked at on meeting them, then after
        # 1, 2, 4, 8, 10, 10, … seconds.
        expected = [100.0, 101.0, 103.0, 107.0, 115.0, 125.0, 135.0, 145.0]
        assert looks == expected
        assert OWED_FIRST_SECONDS == 1.0 and OWED_MOST_SECONDS == 10.0

        # Another relay publishes the row with the lower id only now: the next round, which
        # begins ROUND_SECONDS after the first pass, meets it.
        with unit_of_work(hub.session_factory) as session:
            session.execute(
                update(OutboxEvent).where(OutboxEvent.id == late).values(published_at=utcnow())
            )
            for consumer in EVENT_CONSUMERS:
                mark_processed(session, consumer=consumer, event_id="late")
        round_at = 100.0 + ROUND_SECONDS
        settled = 0
        while now[0] < round_at:
            settled += settler.settle()
            now[0] = round(now[0] + 0.5, 1)
        assert settled == 0, "a row behind the ones met waits for the next round"
        assert settler.settle() == 1
        with unit_of_work(hub.session_factory) as session:
            assert session.get(OutboxEvent, late).settled_at is not None  # type: ignore[union-attr]
    finally:
        event.remove(hub.engine, "before_cursor_execute", capture)
        hub.engine.dispose()


def test_a_pass_that_forgets_what_it_tracked_goes_on_with_the_rows_still_known(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More owed rows than a settler keeps (KNOWN_ROWS): it forgets them in the middle of a
    pass, and the rest of the pass skips what it no longer knows instead of failing."""
    monkeypatch.setattr(settlement, "KNOWN_ROWS", 3)
    monkeypatch.setattr(settlement, "PAGE", 2)
    hub, _ = make_hub(database_url, tmp_path)
    with unit_of_work(hub.session_factory) as session:
        for n in range(4):
            _outbox_row(session, f"owed-{n}", published=True)
    now = [0.0]
    settler = Settler(hub.session_factory, hub.settings, clock=lambda: now[0])
    try:
        assert settler.settle() == 0  # four rows met, in two pages, all owed
        with unit_of_work(hub.session_factory) as session:
            for consumer in EVENT_CONSUMERS:
                mark_processed(session, consumer=consumer, event_id="owed-3")
        now[0] += OWED_FIRST_SECONDS
        # Due: four rows, in two pages of two; judging the first finds four owed (more than
        # three) and starts afresh, so the second page's rows are no longer known.
        assert settler.settle() == 0
        # The next round meets them again, and the one its consumers applied settles.
        now[0] += ROUND_SECONDS
        assert settler.settle() == 1
    finally:
        hub.engine.dispose()
