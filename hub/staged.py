"""Rows a transaction writes together: on PostgreSQL one statement for several tables.

A hot path writes rows nothing in its transaction reads back: a new referral and its first
history entry, its outbox rows, the audit records of the call. Each table's insert is a round
trip and a pass through SQLAlchemy's execution machinery; staged here, they go as one
statement of data-modifying CTEs (``WITH w0 AS (INSERT …), w1 AS (INSERT …) SELECT …``), in
the order they were staged. PostgreSQL checks the statement's foreign keys when the statement
ends, so a row may reference one staged before it in the same statement. SQLite has no
data-modifying CTEs: there, each table's rows are one executemany, in the same order
except that a table's rows wait for those of tables they reference.

Staged rows are written by the next :func:`write` (unless :func:`held`), before the ORM's
next flush (a query's autoflush or the commit's), or at commit; a rollback drops them with the
rest of the transaction. :func:`write_claiming` writes them together with a row that must be
new (an ``Idempotency-Key``), and tells whether it was. Staged rows may reference rows
written or staged before them, and ORM rows may reference staged ones; never the other way
round. Until written, staged rows are invisible to queries: stage only rows that nothing reads
before they are written. A savepoint's rollback does not take back rows staged inside it (the
hub uses no savepoints).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Executable, Table, bindparam, event, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, SessionTransaction

_STAGED = "hub.staged"
_HELD = "hub.staged.held"

# (table, the rows' column names, how many rows)
Shape = tuple[Table, tuple[str, ...], int]


def stage(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Stage rows of one table, all with the same columns, to be written with the next
    :func:`write` or at commit."""
    if rows:
        session.info.setdefault(_STAGED, []).append((table, [dict(row) for row in rows]))


def pending(session: Session, table: Table) -> list[dict[str, Any]]:
    """The rows of ``table`` staged and not yet written, in order."""
    return [
        row for staged, rows in session.info.get(_STAGED, []) if staged is table for row in rows
    ]


def take(session: Session) -> list[tuple[Table, list[dict[str, Any]]]]:
    """Remove and return every staged row not yet written, to :func:`stage` elsewhere."""
    taken: list[tuple[Table, list[dict[str, Any]]]] = session.info.pop(_STAGED, [])
    return taken


def discard(session: Session) -> None:
    """Drop every staged row not yet written, as a rollback would."""
    session.info.pop(_STAGED, None)


def write(session: Session) -> None:
    """Write every staged row now: one statement on PostgreSQL; one per table on SQLite, and
    on PostgreSQL for a batch too large for one statement.

    Inside :func:`held`, nothing: the rows go with the next write after it, the next flush
    or the commit."""
    if not session.info.get(_HELD):
        _write(session, None)


def write_claiming(session: Session, table: Table, row: Mapping[str, Any]) -> bool:
    """Write every staged row and insert ``row`` unless it collides with a unique key of
    ``table`` (``ON CONFLICT DO NOTHING``); True if it was inserted.

    On PostgreSQL one statement with the staged rows; a concurrent transaction inserting the
    same key makes it wait for that one's outcome. When it was not inserted, the staged rows
    were: the caller rolls back."""
    return _write(session, (table, dict(row)))


def claim(session: Session, table: Table, row: Mapping[str, Any]) -> bool:
    """Insert ``row`` unless it collides with a unique key of ``table`` (``ON CONFLICT DO
    NOTHING``); True if it was inserted. Staged rows stay staged.

    On PostgreSQL the statement is made once per table and shape and goes to the driver as
    :func:`write_claiming`'s does, past SQLAlchemy's execution of a Core statement (a third
    of this statement's cost)."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql" and _defaults_given(table, frozenset(row)):
        return _write_together(session, [], (table, dict(row)))
    return session.execute(insert_if_absent(table, dialect.name), row).first() is not None


@functools.cache
def _defaults_given(table: Table, columns: frozenset[str]) -> bool:
    # A statement made once cannot compute a Python default per row: SQLAlchemy's can.
    return all(c.key in columns for c in table.columns if c.default)


@contextmanager
def held(session: Session) -> Iterator[None]:
    """Within the block, :func:`write` only collects: for a unit of work that ends with
    :func:`write_claiming`, so that its rows and the claim are one statement. A flush or the
    commit still writes what was staged."""
    session.info[_HELD] = True
    try:
        yield
    finally:
        session.info.pop(_HELD, None)


Claim = tuple[Table, dict[str, Any]]


def _write(session: Session, claim: Claim | None) -> bool:
    parts = _by_table(session.info.pop(_STAGED, []))
    dialect = session.get_bind().dialect
    postgresql = dialect.name == "postgresql"
    values = sum(len(rows) * len(rows[0]) for _t, rows in parts) + (len(claim[1]) if claim else 0)
    if postgresql and values <= _MAX_TOGETHER:
        if parts or claim is not None:
            return _write_together(session, parts, claim)
        return True
    # Before the ORM's pending rows, which may reference these (a consent its person).
    with session.no_autoflush:
        for table, rows in _referenced_first(parts):
            session.execute(_plain_insert(table), rows)
        if claim is None:
            return True
        table, row = claim
        return session.execute(insert_if_absent(table, dialect.name), row).first() is not None


# Values in one combined statement at most: a request's rows are a few dozen; a batch staged
# by a bulk job goes table by table (SQLAlchemy batches each table's multi-row INSERTs),
# which keeps PostgreSQL's limit of 65,535 parameters and the cache of shapes out of reach.
_MAX_TOGETHER = 2000

Part = tuple[Table, list[dict[str, Any]]]


def _by_table(parts: list[Part]) -> list[Part]:
    # A table's rows go together, at the place of its first rows: rows a unit of work stages
    # reference rows of tables it staged before (a referral its person), never after. (Where
    # the tables go one at a time, :func:`_referenced_first` keeps that across units.)
    merged: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, rows in parts:
        merged.setdefault((table, tuple(rows[0])), []).extend(rows)
    return [(table, rows) for (table, _columns), rows in merged.items()]


def _write_together(session: Session, parts: list[Part], claim: Claim | None) -> bool:
    shapes = tuple((table, tuple(rows[0]), len(rows)) for table, rows in parts)
    claimed = (claim[0], tuple(claim[1])) if claim else None
    sql, fixed, processors, plan = _together(shapes, claimed, session.get_bind().dialect)
    connection = session.connection()
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.Connection):
        # The values in the order of the statement's numbered placeholders, each converted
        # as its column's type does, by the plan made once with the statement.
        claimed_row = claim[1] if claim is not None else {}
        args = []
        for i, j, name, value, process in plan:
            if i >= 0:
                value = parts[i][1][j][name]
            elif i == _CLAIMED:
                value = claimed_row[name]
            args.append(value if process is None else process(value))
        # The statement's placeholders are PostgreSQL's own ($1, $2, …), converted once with
        # the statement; psycopg would convert them again on every call (it caches that only
        # for statements of up to 50 parameters), a tenth of a referral's CPU.
        factory = driver.cursor_factory
        driver.cursor_factory = psycopg.RawCursor
        try:
            answer = connection.exec_driver_sql(sql.numbered, tuple(args))
        finally:
            driver.cursor_factory = factory
    else:
        params = dict(fixed)
        for i, (_table, rows) in enumerate(parts):
            for j, row in enumerate(rows):
                for name, value in row.items():
                    key = f"w{i}_{j}_{name}"
                    process = processors[key]
                    params[key] = value if process is None else process(value)
        if claim is not None:
            for name, value in claim[1].items():
                process = processors[f"c_{name}"]
                params[f"c_{name}"] = value if process is None else process(value)
        answer = connection.exec_driver_sql(sql.named, params)
    return claim is None or answer.rowcount > 0


#: In a plan's step, where its value comes from: a staged row (its part's index, >= 0), the
#: claimed row, or the statement itself (a fixed value).
_CLAIMED, _FIXED = -1, -2
#: One parameter of the numbered statement: (part or _CLAIMED or _FIXED, row, column, the
#: fixed value, the column type's bind processor).
Step = tuple[int, int, str, Any, Callable[[Any], Any] | None]


def _referenced_first(parts: list[Part]) -> list[Part]:
    """The parts in the order staged, except that a table's rows wait for those of the
    tables they reference. Rows staged by units of work one after the other need not come so
    (a referral for a known person stages no person, a new person's does: merged by table,
    the second's referral would come before its person)."""
    present = {table for table, _rows in parts}
    written: set[Table] = set()
    ordered: list[Part] = []
    waiting = list(parts)
    while waiting:
        for i, (table, _rows) in enumerate(waiting):
            if all(t in written or t not in present or t is table for t in _references(table)):
                ordered.append(waiting.pop(i))
                written.add(table)
                break
        else:  # tables referencing each other: as staged
            return ordered + waiting
    return ordered


@functools.cache
def _references(table: Table) -> frozenset[Table]:
    return frozenset(key.column.table for key in table.foreign_keys)


@functools.cache
def _plain_insert(table: Table) -> Executable:
    return insert(table)


def insert_for(dialect: str) -> Any:
    """The ``insert`` of a dialect's own (with ``on_conflict_do_*``): PostgreSQL's or SQLite's."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@functools.cache
def insert_if_absent(table: Table, dialect: str) -> Executable:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING`` the primary key, for one row of ``table``.

    Built once per table: the values go in as parameters, so a request pays for binding them,
    not for constructing and cache-keying a new statement. RETURNING rather than rowcount:
    the driver reports -1 for inserts it returns rows of."""
    stmt = insert_for(dialect)(table).on_conflict_do_nothing()  # the table: no ORM bulk path
    return stmt.returning(*table.primary_key.columns)


@dataclass(frozen=True)
class _Sql:
    named: str  # with the dialect's placeholders, %(name)s
    numbered: str  # with PostgreSQL's, $1 …
    order: tuple[str, ...]  # the parameters' names, in the order of their numbers

    @classmethod
    def of(cls, named: str) -> _Sql:
        order: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            return f"${order.setdefault(match[1], len(order) + 1)}"

        numbered = _PLACEHOLDER.sub(number, named).replace("%%", "%")
        return cls(named, numbered, tuple(order))


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@functools.lru_cache(maxsize=512)  # shapes vary with batch sizes; a bounded set is hot
def _together(
    shapes: tuple[Shape, ...],
    claim: tuple[Table, tuple[str, ...]] | None,
    dialect: Dialect,
) -> tuple[_Sql, dict[str, Any], dict[str, Callable[[Any], Any] | None], tuple[Step, ...]]:
    # Compiled once per shape (which tables, which columns, how many rows): SQLAlchemy does
    # not cache a multi-row INSERT's compiled form, and compiling this one cost more than the
    # round trips it saves. A request then only converts its values as each column's type
    # does (JSON, aware datetimes) and hands them to the driver.
    processors: dict[str, Callable[[Any], Any] | None] = {}
    sources: dict[str, tuple[int, int, str]] = {}
    for table, columns in [(t, c) for t, c, _n in shapes] + ([claim] if claim else []):
        # A default computed by SQLAlchemy would be computed once, here, for every request.
        if missing := [c.key for c in table.columns if c.default and c.key not in columns]:
            raise ValueError(f"{table.name}: give {', '.join(missing)} (a Python default)")
    inserts: list[Any] = []
    for i, (table, columns, count) in enumerate(shapes):
        rows = []
        for j in range(count):
            row = {}
            for name in columns:
                key, type_ = f"w{i}_{j}_{name}", table.c[name].type
                processors[key] = type_.dialect_impl(dialect).bind_processor(dialect)
                sources[key] = (i, j, name)
                row[name] = bindparam(key, type_=type_)
            rows.append(row)
        inserts.append(insert(table).values(rows))
    if claim is not None:
        table, columns = claim
        row = {}
        for name in columns:
            key, type_ = f"c_{name}", table.c[name].type
            processors[key] = type_.dialect_impl(dialect).bind_processor(dialect)
            sources[key] = (_CLAIMED, 0, name)
            row[name] = bindparam(key, type_=type_)
        inserts.append(postgresql.insert(table).values(row).on_conflict_do_nothing())
    # The last insert is the statement, the others its data-modifying CTEs, which PostgreSQL
    # runs to completion whether or not the statement reads them. No result rows: the
    # claim's outcome is the statement's row count, which costs the driver and SQLAlchemy
    # less than a row to describe and fetch.
    *before, last = inserts
    ctes = [stmt.cte(f"w{i}") for i, stmt in enumerate(before)]
    last = last.inline()  # no implicit RETURNING of a generated primary key
    compiled = (last.add_cte(*ctes) if ctes else last).compile(dialect=dialect)
    fixed = {key: value for key, value in compiled.params.items() if key not in processors}
    sql = _Sql.of(compiled.string)
    plan = tuple(
        (*sources[key], None, processors[key])
        if key in sources
        else (_FIXED, 0, key, fixed[key], None)
        for key in sql.order
    )
    return sql, fixed, processors, plan


@event.listens_for(Session, "before_commit")
@event.listens_for(Session, "before_flush")
def _write_first(session: Session, *_flush: Any) -> None:
    # Before the ORM flushes its pending rows (at a query's autoflush or at commit): they may
    # reference staged rows, never the other way round.
    if session.info.get(_STAGED):
        _write(session, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is gone already; after a rollback its rows go with the
    # transaction, as pending objects would.
    if transaction.parent is None:
        session.info.pop(_STAGED, None)
