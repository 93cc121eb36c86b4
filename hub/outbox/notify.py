"""Cross-process wake-ups on PostgreSQL: LISTEN on a channel that committed writes NOTIFY.

``hub_outbox`` wakes the relay: a process's :class:`Notifier` sends it after each commit that
wrote outbox rows (hub.bootstrap). ``hub_auth`` tells gateways which partners and clients
changed (see auth.cache).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from hub.outbox.service import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


def listen(database_url: str, wakeup: threading.Event, stop: threading.Event) -> None:
    """Set ``wakeup`` whenever a transaction that wrote to the outbox commits."""
    subscribe(database_url, NOTIFY_CHANNEL, lambda _payload: wakeup.set(), stop)


def subscribe(
    database_url: str,
    channel: str,
    on_message: Callable[[str], None],
    stop: threading.Event,
    *,
    on_listening: Callable[[bool], None] | None = None,
) -> None:
    """Call ``on_message`` with each notification's payload until ``stop`` is set.

    ``on_listening(True)`` once LISTEN is in place, ``on_listening(False)`` when the connection
    is lost: notifications sent meanwhile are gone, so whoever relies on them must know.
    """
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    while not stop.is_set():
        listening = False
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {channel}")
                listening = True
                if on_listening is not None:
                    on_listening(True)
                while not stop.is_set():
                    for notice in conn.notifies(timeout=1.0, stop_after=1):
                        on_message(notice.payload)
        except psycopg.Error as exc:
            if stop.is_set():
                # Told to stop while waiting: a connection ended meanwhile (the database
                # shutting down with the process) is no failure to report.
                return
            # Callers still work without (the relay polls, caches expire); listening
            # resumes when the database is back.
            log.warning("notify.listen_failed", extra={"channel": channel, "error": repr(exc)})
            stop.wait(2.0)
        finally:
            if listening and on_listening is not None:
                on_listening(False)


#: Seconds between two NOTIFYs of a :class:`Notifier` at least.
MIN_NOTIFY_SPACING = 0.002


class Notifier:
    """Sends ``NOTIFY channel`` after commits, in a transaction of its own, from a thread.

    Not in the transaction that wrote the rows: PostgreSQL takes one lock for the whole
    database when a transaction that sent NOTIFY commits, and holds it until its WAL is
    flushed, so every writer would commit one after the other. Here the notifying transaction
    writes nothing and holds that lock for a moment. Wake-ups coalesce: those arriving while
    one is sent cause one more, at most every ``spacing`` seconds. A wake-up lost to a crash
    or an outage costs the relay its poll interval, nothing more.

    Its connection is its own, not the engine's: it is no statement of any request. After
    ``idle`` seconds without a wake-up the thread closes it and ends; ``wake`` starts another.
    """

    def __init__(
        self,
        database_url: str,
        channel: str,
        *,
        spacing: float = MIN_NOTIFY_SPACING,
        idle: float = 10.0,
    ) -> None:
        self._conninfo = make_url(database_url).set(drivername="postgresql")
        self._channel = channel
        self._spacing, self._idle = spacing, idle
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Have ``NOTIFY channel`` sent soon (from another thread: this returns at once)."""
        self._pending.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"notify-{self._channel}", daemon=True
                )
                self._thread.start()

    @property
    def running(self) -> bool:
        """Whether its thread is running (it ends when idle)."""
        with self._lock:
            return self._thread is not None

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while self._wait():
                self._pending.clear()
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            self._conninfo.render_as_string(False), autocommit=True
                        )
                    conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
                except psycopg.Error as exc:
                    log.warning(
                        "notify.send_failed", extra={"channel": self._channel, "error": repr(exc)}
                    )
                    if conn is not None:
                        conn.close()
                    conn = None
                    time.sleep(1.0)
                    continue
                time.sleep(self._spacing)
        finally:
            if conn is not None:
                conn.close()

    def _wait(self) -> bool:
        # False once idle: then the thread is gone before a wake-up can find it running.
        while not self._pending.wait(self._idle):
            with self._lock:
                if not self._pending.is_set():
                    self._thread = None
                    return False
        return True
