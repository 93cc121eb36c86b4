"""Cross-process wake-ups on PostgreSQL: LISTEN on a channel that committed writes NOTIFY.

``hub_outbox`` wakes the relay (see outbox.service); ``hub_auth`` tells gateways which
partners and clients changed (see auth.cache).
"""

from __future__ import annotations

import logging
import threading
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
            # Callers still work without (the relay polls, caches expire); listening
            # resumes when the database is back.
            log.warning("notify.listen_failed", extra={"channel": channel, "error": repr(exc)})
            stop.wait(2.0)
        finally:
            if listening and on_listening is not None:
                on_listening(False)
