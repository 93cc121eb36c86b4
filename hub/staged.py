"""Rows a transaction writes together: on PostgreSQL one statement for several tables.

A hot path writes rows nothing in its transaction reads back: a new referral and its first
history entry, its outbox rows, the audit records of the call. Each table's insert is a round
trip and a pass through SQLAlchemy's execution machinery; staged here, they go as one
statement of data-modifying CTEs (``WITH w0 AS (INSERT …), w1 AS (INSERT …) SELECT …``), in
the order they were staged. PostgreSQL checks the statement's foreign keys when the statement
ends, so a row may reference one staged before it in the same statement. SQLite has no
data-modifying CTEs: there, each table's rows are one executemany, in the same order.

Staged rows are written by the next :func:`write`, before the ORM's next flush (a query's
autoflush or the commit's), or at commit; a rollback drops them with the rest of the
transaction. Staged rows may reference rows written or staged before them, and ORM rows may
reference staged ones; never the other way round. Until written, staged rows are invisible to
queries: stage only rows that nothing reads before they are written. A savepoint's rollback
does not take back rows staged inside it (the hub uses no savepoints).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, Table, bindparam, event, func, insert, literal, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, SessionTransaction

_STAGED = "hub.staged"

# (table, the rows' column names, how many rows)
Shape = tuple[Table, tuple[str, ...], int]


def stage(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Stage rows of one table, all with the same columns, to be written with the next
    :func:`write` or at commit."""
    if rows:
        session.info.setdefault(_STAGED, []).append((table, [dict(row) for row in rows]))


def write(session: Session, *, notify: str | None = None) -> None:
    """Write every staged row now: one statement on PostgreSQL, which also sends ``NOTIFY
    notify`` (delivered at commit) when a channel is named; one per table on SQLite, and on
    PostgreSQL for a batch too large for one statement."""
    parts = _by_table(session.info.pop(_STAGED, []))
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and sum(len(rows) * len(rows[0]) for _t, rows in parts) <= _MAX_TOGETHER:
        if parts or notify is not None:
            _write_together(session, parts, notify)
        return
    # Before the ORM's pending rows, which may reference these (a consent its person).
    with session.no_autoflush:
        for table, rows in parts:
            session.execute(_plain_insert(table), rows)
        if postgresql and notify is not None:
            session.execute(select(func.pg_notify(notify, "")))


# Values in one combined statement at most: a request's rows are a few dozen; a batch staged
# by a bulk job goes table by table (SQLAlchemy batches each table's multi-row INSERTs),
# which keeps PostgreSQL's limit of 65,535 parameters and the cache of shapes out of reach.
_MAX_TOGETHER = 2000

Part = tuple[Table, list[dict[str, Any]]]


def _by_table(parts: list[Part]) -> list[Part]:
    # A table's rows go together, at the place of its first rows: rows a transaction stages
    # reference rows of tables it staged before (a referral its person), never after.
    merged: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, rows in parts:
        merged.setdefault((table, tuple(rows[0])), []).extend(rows)
    return [(table, rows) for (table, _columns), rows in merged.items()]


def _write_together(session: Session, parts: list[Part], notify: str | None) -> None:
    shapes = tuple((table, tuple(rows[0]), len(rows)) for table, rows in parts)
    sql, fixed, processors = _together(shapes, notify, session.get_bind().dialect)
    params = dict(fixed)
    for i, (_table, rows) in enumerate(parts):
        for j, row in enumerate(rows):
            for name, value in row.items():
                key = f"w{i}_{j}_{name}"
                process = processors[key]
                params[key] = value if process is None else process(value)
    session.connection().exec_driver_sql(sql, params)


@functools.cache
def _plain_insert(table: Table) -> Executable:
    return insert(table)


@functools.lru_cache(maxsize=512)  # shapes vary with batch sizes; a bounded set is hot
def _together(
    shapes: tuple[Shape, ...], notify: str | None, dialect: Dialect
) -> tuple[str, dict[str, Any], dict[str, Callable[[Any], Any] | None]]:
    # Compiled once per shape (which tables, which columns, how many rows): SQLAlchemy does
    # not cache a multi-row INSERT's compiled form, and compiling this one cost more than the
    # round trips it saves. A request then only converts its values as each column's type
    # does (JSON, aware datetimes) and hands them to the driver.
    ctes = []
    processors: dict[str, Callable[[Any], Any] | None] = {}
    for i, (table, columns, count) in enumerate(shapes):
        rows = []
        for j in range(count):
            row = {}
            for name in columns:
                key, type_ = f"w{i}_{j}_{name}", table.c[name].type
                processors[key] = type_.dialect_impl(dialect).bind_processor(dialect)
                row[name] = bindparam(key, type_=type_)
            rows.append(row)
        ctes.append(insert(table).values(rows).cte(f"w{i}"))
    last = select(func.pg_notify(notify, "")) if notify else select(literal(1))
    compiled = last.add_cte(*ctes).compile(dialect=dialect)
    fixed = {key: value for key, value in compiled.params.items() if key not in processors}
    return compiled.string, fixed, processors


@event.listens_for(Session, "before_commit")
@event.listens_for(Session, "before_flush")
def _write_first(session: Session, *_flush: Any) -> None:
    # Before the ORM flushes its pending rows (at a query's autoflush or at commit): they may
    # reference staged rows, never the other way round.
    if session.info.get(_STAGED):
        write(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is gone already; after a rollback its rows go with the
    # transaction, as pending objects would.
    if transaction.parent is None:
        session.info.pop(_STAGED, None)
