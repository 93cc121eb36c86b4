"""Server processes outlive faults: a failed worker is started again, a database outage is
waited out; and their garbage collector is tuned for short pauses."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

from consumers.runner import ConsumerHalted, until_database_answers
from hub import runtime


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "RESTART_SECONDS", (0.01, 0.02))


def test_a_failed_worker_is_started_again() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def worker(stop: threading.Event) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("the database went away")

    runtime.start_thread("w", worker, stop).join(timeout=5)
    assert len(calls) == 3, "two failures, then a normal end"


def test_a_worker_that_stopped_on_purpose_is_not_restarted() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def worker(stop: threading.Event) -> None:
        calls.append(1)
        raise ConsumerHalted("nothing but dead letters")

    thread = runtime.start_thread("w", worker, stop)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert calls == [1]


def test_no_restart_once_stopping() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def worker(stop: threading.Event) -> None:
        calls.append(1)
        stop.set()
        raise RuntimeError("failed while stopping")

    runtime.start_thread("w", worker, stop).join(timeout=5)
    assert calls == [1]


def _outage(times: int) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []

    def action() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    return calls, action


def test_a_database_outage_is_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda timeout=None: False)  # no real pauses
    calls, action = _outage(3)
    assert until_database_answers(stop, action, name="t") is True
    assert len(calls) == 4


def test_stopping_during_an_outage_reports_not_done() -> None:
    stop = threading.Event()
    calls, action = _outage(10**6)
    threading.Timer(0.3, stop.set).start()
    assert until_database_answers(stop, action, name="t") is False
    assert 1 <= len(calls) < 10


def test_other_errors_are_not_swallowed() -> None:
    def action() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        until_database_answers(threading.Event(), action, name="t")


def test_server_processes_freeze_their_start_up_heap() -> None:
    import gc

    threshold = gc.get_threshold()
    try:
        runtime.tune_gc()
        assert gc.get_freeze_count() > 10_000, "modules and mappings are out of the GC's sight"
        assert gc.get_threshold()[0] == runtime.GC_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
