"""The relay's wake-up on PostgreSQL: a NOTIFY sent after the commit, by a thread of its own.

A NOTIFY inside the writing transaction would hold PostgreSQL's database-wide notify lock
from that transaction's commit until its WAL is flushed: every writer would commit one after
the other. test_hot_path shows the referral's transaction sends none; the relay in its own
process still wakes on commit (tests/integration/test_consumers.py).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hub.bootstrap import Hub
from hub.outbox.notify import Notifier, subscribe
from hub.outbox.service import NOTIFY_CHANNEL
from tests.hubtest import STUDENT_REFERRAL, api_client, make_hub


def listener(hub: Hub, channel: str) -> psycopg.Connection:
    url = make_url(hub.settings.resolved_database_url).set(drivername="postgresql")
    conn = psycopg.connect(url.render_as_string(False), autocommit=True)
    conn.execute(f"LISTEN {channel}")
    return conn


def received(conn: psycopg.Connection, within: float) -> int:
    count, until = 0, time.monotonic() + within
    while (left := until - time.monotonic()) > 0:
        count += sum(1 for _ in conn.notifies(timeout=left, stop_after=1))
    return count


@pytest.fixture
def pg_hub(hub: Hub) -> Hub:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite's relay runs in the writing process")
    return hub


def test_wake_ups_arriving_together_send_few_notifications_and_at_least_one(pg_hub: Hub) -> None:
    conn = listener(pg_hub, "hub_test_together")
    try:
        url = pg_hub.settings.resolved_database_url
        notifier = Notifier(url, "hub_test_together", spacing=0.05, idle=0.2)
        wakers = [threading.Thread(target=notifier.wake) for _ in range(200)]
        for t in wakers:
            t.start()
        for t in wakers:
            t.join()
        got = received(conn, 1.0)
        assert 1 <= got <= 5, got
    finally:
        conn.close()


def test_an_idle_notifier_ends_its_thread_and_a_later_wake_up_still_arrives(pg_hub: Hub) -> None:
    conn = listener(pg_hub, "hub_test_idle")
    try:
        notifier = Notifier(pg_hub.settings.resolved_database_url, "hub_test_idle", idle=0.2)
        notifier.wake()
        assert received(conn, 0.5) == 1
        time.sleep(0.5)
        assert not notifier.running
        assert not [t for t in threading.enumerate() if t.name == "notify-hub_test_idle"]
        notifier.wake()
        assert notifier.running
        assert received(conn, 1.0) == 1
    finally:
        conn.close()


def test_a_gateways_notifications_come_no_more_often_than_the_relay_starts_batches(
    database_url: str, tmp_path: Path
) -> None:
    """Under load the relay starts a batch at most every ``HUB_RELAY_LINGER_MS``; a wake-up
    sooner would be one more transaction in the gateway and in PostgreSQL for nothing."""
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite's relay runs in the writing process")
    hub, partners = make_hub(database_url, tmp_path, relay_linger_ms=200)
    conn = listener(hub, NOTIFY_CHANNEL)
    try:
        with api_client(hub) as client:
            headers = partners.headers(client, "ude")
            started, accepted = time.monotonic(), 0
            while time.monotonic() - started < 0.5:
                r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=headers)
                assert r.status_code == 202, r.text
                accepted += 1
            spent = time.monotonic() - started
        got = received(conn, 0.5)
    finally:
        conn.close()
        hub.engine.dispose()
    assert accepted >= 10, accepted  # each committed, and each woke the notifier
    # One at once, then at most one per 200 ms, the last after the loop: within 0.5 s more.
    assert 1 <= got <= 2 + spent / 0.2, (got, accepted)


def _listening_on(hub: Hub, channel: str, stop: threading.Event) -> tuple[threading.Thread, int]:
    """A subscriber's thread on ``channel``, once LISTEN is in place, and its backend's pid."""
    ready = threading.Event()
    thread = threading.Thread(
        target=subscribe,
        args=(hub.settings.resolved_database_url, channel, lambda _payload: None, stop),
        kwargs={"on_listening": lambda listening: listening and ready.set()},
    )
    thread.start()
    assert ready.wait(5.0)
    with hub.engine.connect() as conn:
        pid = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE query = %s", (f"LISTEN {channel}",)
        ).scalar_one()
    return thread, int(pid)


def _terminate(hub: Hub, pid: int) -> None:
    with hub.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("stopping", [False, True])
def test_a_listener_reports_a_lost_connection_unless_it_was_told_to_stop(
    pg_hub: Hub, caplog: pytest.LogCaptureFixture, stopping: bool
) -> None:
    """A database that goes away while a process is shutting down (the benchmarks drop
    theirs; a host stops PostgreSQL with the hub) is no failure for an operator to chase."""
    channel = f"hub_test_lost_{stopping}".lower()
    stop = threading.Event()
    thread, pid = _listening_on(pg_hub, channel, stop)
    try:
        with caplog.at_level(logging.WARNING, logger="hub.outbox.notify"):
            if stopping:
                stop.set()
            _terminate(pg_hub, pid)
            if stopping:
                thread.join(5.0)
                assert not thread.is_alive()
            else:
                deadline = time.monotonic() + 5.0
                while not caplog.records and time.monotonic() < deadline:
                    time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5.0)
    failed = [r for r in caplog.records if r.msg == "notify.listen_failed"]
    assert len(failed) == (0 if stopping else 1), failed
