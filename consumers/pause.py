"""A partner's outage as the threads pushing to it share it: one notices, all back off."""

from __future__ import annotations

import threading
import time

MAX_BACKOFF_SECONDS = 30.0


class Pause:
    """Backoff shared by every push to one partner.

    Without it, each of the concurrent pushes would retry on its own clock and record the
    same outage again, hammering a partner that is struggling already."""

    def __init__(self, initial_backoff: float) -> None:
        self._lock = threading.Lock()
        self._initial = initial_backoff
        self._backoff = initial_backoff
        self._until = 0.0

    def wait(self, stop: threading.Event) -> None:
        """Return when the partner may be tried again (or when stopping)."""
        while not stop.is_set():
            with self._lock:
                remaining = self._until - time.monotonic()
            if remaining <= 0:
                return
            stop.wait(remaining)

    def failed(self, retry_after: float | None) -> float | None:
        """Back everyone off; the wait when this failure began a new pause, else None."""
        with self._lock:
            now = time.monotonic()
            if now < self._until:
                return None
            wait = min(retry_after or self._backoff, MAX_BACKOFF_SECONDS)
            self._until = now + wait
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)
            return wait

    def succeeded(self) -> None:
        """The partner answers again: the next outage starts from the shortest backoff."""
        with self._lock:
            self._backoff = self._initial
