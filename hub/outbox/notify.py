"""Cross-process relay wake-up on PostgreSQL: ``LISTEN hub_outbox`` (see outbox.service)."""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import make_url

from hub.outbox.service import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


def listen(database_url: str, wakeup: threading.Event, stop: threading.Event) -> None:
    """Set ``wakeup`` whenever a transaction that wrote to the outbox commits."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wakeup.set()
        except psycopg.Error as exc:
            # The relay still polls; listening resumes when the database is back.
            log.warning("relay.listen_failed", extra={"error": repr(exc)})
            stop.wait(2.0)
