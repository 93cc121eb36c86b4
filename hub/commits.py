"""Group commit: the units of work of requests that arrive together share one transaction.

A referral's writes are two statements (hub.staged), but its own transaction also costs a
connection checkout, a ``COMMIT`` and its WAL flush, SQLAlchemy's bookkeeping per transaction
and a hand-over to a worker thread and back. A :class:`CommitGroup` runs the units of work that
queued while its transactions were busy together: one hand-over, one session, one commit.

What it keeps (``tests/api/test_group_commit.py``):

* a unit's result reaches its caller only after the transaction holding its rows committed;
* one unit's failure never takes the others with it: after any failure in a shared
  transaction (an exception, or a unit that rolled the session back, as a repeated
  ``Idempotency-Key`` does) that transaction is rolled back and every unit of it runs again
  alone, in a transaction of its own, exactly as without grouping;
* a failing ``COMMIT`` is every unit's failure: whether it committed is then unknown, and
  running the units again could apply them twice (a client retries with its key). A
  ``COMMIT`` refused for a deferred constraint committed nothing: the units run alone.

A lone unit starts at once when no transaction of the group runs: grouping then adds no wait,
it only takes along what queued meanwhile. Beside a running transaction, a further one begins
only for a queue of ``max(2, most // 4)`` units; fewer wait for the running one to end.
Units run one after the other in the transaction's thread, each in the context (trace, log
fields) of the request that submitted it. A unit must not commit; it may roll back.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import staged, telemetry

T = TypeVar("T")


@dataclass(eq=False)
class _Unit:
    work: Callable[[Session], Any]
    context: contextvars.Context
    future: asyncio.Future[Any]
    # Set in the transaction's thread, handed to the future in the event loop.
    outcome: tuple[bool, Any] | None = None


class CommitGroup:
    """Runs units of work in shared transactions: at most ``most`` units per transaction, at
    most ``lanes`` transactions at a time (each on its own connection and thread).

    Bound to the event loop that first uses it, as one gateway process's app is."""

    def __init__(self, make_session: Callable[[], Session], *, most: int, lanes: int) -> None:
        if most < 1 or lanes < 1:
            raise ValueError("most and lanes must be at least 1")
        self._make_session = make_session
        self._most, self._lanes, self._free = most, lanes, lanes
        # While a transaction runs, another begins only for this many waiting units: fewer
        # wait for it to end and go together, at one commit's cost instead of several.
        self._spill = max(2, most // 4)
        self._queue: deque[_Unit] = deque()
        self._running: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Units queued for a transaction not yet begun."""
        return len(self._queue)

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)``, committed; its result once the commit is done."""
        unit = _Unit(work, contextvars.copy_context(), asyncio.get_running_loop().create_future())
        self._queue.append(unit)
        self._launch_while_due()
        result: T = await unit.future
        return result

    def _launch_while_due(self) -> None:
        # A unit starts at once when no transaction runs; beside a running one only a queue
        # of ``_spill`` units starts another, so that one slow transaction (a lock wait, a
        # worker given more connections than the others) does not hold up everything.
        while (
            self._queue
            and self._free
            and (self._free == self._lanes or len(self._queue) >= self._spill)
        ):
            self._launch()

    def _launch(self) -> None:
        units: list[_Unit] = []
        while self._queue and len(units) < self._most:
            unit = self._queue.popleft()
            if not unit.future.done():  # a request cancelled while it waited never runs
                units.append(unit)
        if not units:
            return
        self._free -= 1
        task = asyncio.get_running_loop().create_task(self._drive(units))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _drive(self, units: list[_Unit]) -> None:
        try:
            await anyio.to_thread.run_sync(self._transact, units)
        finally:
            self._free += 1
            for unit in units:
                _deliver(unit)
            self._launch_while_due()

    def _transact(self, units: list[_Unit]) -> None:
        instruments = telemetry.metrics()
        if len(units) > 1:
            if self._together(units):
                if _committed(units[0]):  # all of them, or none
                    instruments.commit_units.record(len(units))
                return
            instruments.commit_separated.add(1)
        for unit in units:
            self._alone(unit)
            if _committed(unit):
                instruments.commit_units.record(1)

    def _together(self, units: list[_Unit]) -> bool:
        """Run ``units`` in one transaction; False (rolled back) if each must run alone."""
        session = self._make_session()
        try:
            results = []
            for unit in units:
                before = session.get_transaction()
                try:
                    results.append(unit.context.run(unit.work, session))
                except Exception:
                    return False
                if before is not None and session.get_transaction() is not before:
                    return False  # it rolled back: the rows of the units before it are gone
            try:
                # Every statement before the COMMIT: a failure here is a statement's, and
                # nothing committed; a failure of the COMMIT leaves the outcome unknown.
                staged.write(session)
                session.flush()
            except Exception:
                return False
            try:
                session.commit()
            except IntegrityError:
                # PostgreSQL refused the COMMIT (a deferred constraint): nothing committed.
                return False
            except Exception as exc:
                for unit in units:
                    unit.outcome = (False, exc)
                return True
            for unit, result in zip(units, results, strict=True):
                unit.outcome = (True, result)
            return True
        finally:
            _end(session)

    def _alone(self, unit: _Unit) -> None:
        session = self._make_session()
        try:
            result = unit.context.run(unit.work, session)
            session.commit()
        except Exception as exc:
            unit.outcome = (False, exc)
        else:
            unit.outcome = (True, result)
        finally:
            _end(session)


def _committed(unit: _Unit) -> bool:
    return unit.outcome is not None and unit.outcome[0]


def _end(session: Session) -> None:
    try:
        if session.in_transaction():
            session.rollback()
    finally:
        session.close()


def _deliver(unit: _Unit) -> None:
    if unit.future.done():  # its request was cancelled meanwhile: nobody waits for it
        return
    if unit.outcome is None:
        unit.future.set_exception(RuntimeError("the shared transaction ended without an outcome"))
    elif unit.outcome[0]:
        unit.future.set_result(unit.outcome[1])
    else:
        unit.future.set_exception(unit.outcome[1])
