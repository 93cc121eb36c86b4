"""Database engine, declarative base and the unit of work used by every entry point."""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import DateTime, Engine, MetaData, Table, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

from hub import jsontext, staged

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes; SQLite returns naive ones, which are UTC by construction."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys, a busy timeout, a private file.

    Statement parameters never reach logs or exception texts (``hide_parameters``): they
    carry sealed personal data and, in development, inline connector secrets; SQLAlchemy's
    own shortening of long parameters can cut a redaction marker off and leave a secret's
    tail behind."""
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("json_serializer", jsontext.text)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_database_file(Path(path))
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # writers take the lock up front instead of failing on upgrade (SQLITE_BUSY).
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection the server closed is
    # recognised by its readable socket instead, and pool_recycle retires connections before
    # a firewall or proxy drops them silently (idle timeouts are typically an hour or more).
    engine = create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800, **kwargs)
    event.listen(engine, "checkout", _refuse_closed_by_server)
    return engine


def _private_database_file(path: Path) -> None:
    # The file holds every person's data (sealed or not) and the hub's keys: readable by the
    # hub's user only. SQLite gives its -wal and -shm files the mode of the database file,
    # so the file is created 0600 before SQLite first opens it (an empty file is an empty
    # database), and files left by an older version are tightened on every start.
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            file.chmod(0o600)


def checkpoint_wal(engine: Engine, *, attempts: int = 3) -> bool:
    """SQLite: copy the WAL into the database file and truncate it; True when complete.

    Until a checkpoint, the WAL keeps the page images a transaction replaced, so bytes an
    erasure removed from the database stay readable in ``hub.db-wal``. A reader still on
    an older snapshot keeps the checkpoint from completing: it is tried again briefly.
    Other databases: nothing to do.
    """
    if engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            # Autocommit (isolation_level None): a checkpoint cannot run inside a transaction.
            busy, _log, _done = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            cursor.close()
        finally:
            raw.close()
        if busy == 0:
            return True
        time.sleep(0.1 * (attempt + 1))
    return False


def _refuse_closed_by_server(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    # An idle connection has nothing to read. If its socket is readable, the server has sent
    # its farewell (restart, pg_terminate_backend, idle_session_timeout) and closed it: the
    # pool replaces it before the request's first statement fails on it. A poll with no
    # timeout is a system call, not a round trip.
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        raise DisconnectionError("connection closed")
    poller = select.poll()
    poller.register(dbapi_conn.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("connection closed by the server")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted content (an erased person's references) is overwritten, not left in free pages.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def make_session_factory(
    engine: Engine, info: dict[str, Any] | None = None
) -> sessionmaker[Session]:
    """Sessions that never expire on commit (services return loaded objects)."""
    return sessionmaker(engine, expire_on_commit=False, info=info or {})


def insert_if_absent(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """INSERT one row unless it collides with a unique key: True if this call inserted it.

    ``INSERT … ON CONFLICT DO NOTHING``: one statement, no savepoint, and a concurrent
    transaction inserting the same key makes it wait for that one's outcome instead of failing.
    Runs at once, past the ORM (``hub.staged.claim``): no bookkeeping for the row (it is not
    in the session afterwards); like any query, it flushes what the session has pending first.
    """
    if session.autoflush:  # as a query would; False inside ``Session.no_autoflush``
        session.flush()
    return staged.claim(session, table_of(model), values)


def table_of(model: type[Base]) -> Table:
    """The table of a mapped class, for Core statements that skip the ORM's bookkeeping."""
    return cast(Table, model.__table__)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error; the caller owns the transaction."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def finish(session: Session, *, commit: bool) -> None:
    """End a unit of work begun without ``unit_of_work``: commit (or roll back), then close."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_AFTER_COMMIT = "hub.db.after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction commits; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        callback()


@event.listens_for(Session, "after_transaction_end")
def _forget_after_rollback(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT, None)
