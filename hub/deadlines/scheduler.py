"""The deadline scheduler: announces warnings and expiries as they fall due."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from hub.db import unit_of_work, utcnow
from hub.deadlines.service import announce_due
from hub.settings import Settings
from schemas.catalogue import Catalogue

log = logging.getLogger(__name__)


class DeadlineScheduler:
    """Scans the clock index every ``interval`` seconds; safe to run in several processes."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        catalogue: Catalogue,
        settings: Settings,
        interval: float,
    ) -> None:
        self._sessions = session_factory
        self._catalogue = catalogue
        self._settings = settings
        self._interval = interval

    def run(self, stop: threading.Event) -> None:
        """Announce due clocks until ``stop`` is set."""
        while not stop.wait(self._interval):
            try:
                self.tick()
            except Exception as exc:  # a failed scan is retried on the next tick
                log.warning("deadlines.scan_failed", extra={"error": repr(exc)})

    def tick(self) -> int:
        """One scan; the number of deadline-due events staged."""
        with unit_of_work(self._sessions) as session:
            staged = announce_due(
                session, catalogue=self._catalogue, settings=self._settings, now=utcnow()
            )
        if staged:
            log.info("deadlines.announced", extra={"events": staged})
        return staged
