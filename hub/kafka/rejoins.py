"""Consumers whose group join was left unfinished join again.

kafka-python 3.0 drives a group join from ``poll`` only while the coordinator's
``need_rejoin()`` is true. A join that started because the topic metadata changed (a topic
re-created with another partition count, as after the embedded broker restarts) can finish
after the metadata has settled again: ``need_rejoin()`` is then false, nothing collects the
finished join, and the member stays "rebalancing" for good, with no assignment callback, no
heartbeats and no fetches. A delivery consumer in that state sat idle for 50 s while its
partner's records piled up (docs/chaos.md, finding 7).

``StalledJoinWatch`` notices a member that is rebalancing although nothing needs a join, and
asks the coordinator to join again; the next ``poll`` then completes the join as usual. A
healthy join never looks like that: kafka-python keeps ``need_rejoin()`` true until the
join's result has been taken, however long the broker holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: How long a member may look stalled before it is asked to join again.
STALL_SECONDS = 3.0


class StalledJoinWatch:
    """Call ``check(consumer)`` once per poll loop."""

    def __init__(
        self,
        name: str,
        *,
        stall_seconds: float = STALL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._stall = stall_seconds
        self._clock = clock
        self._since: float | None = None

    def check(self, consumer: Any) -> bool:
        """Ask a stalled member to join again; True when it did."""
        coordinator = getattr(consumer, "_coordinator", None)  # kafka-python's group member
        if coordinator is None or not coordinator.rebalance_in_progress():
            self._since = None
            return False
        if coordinator.need_rejoin():  # a join is being driven; give it its time
            self._since = None
            return False
        now = self._clock()
        if self._since is None:
            self._since = now
            return False
        if now - self._since < self._stall:
            return False
        self._since = None
        coordinator.request_rejoin()
        log.warning(
            "consumer.join_stalled",
            extra={"consumer": self._name, "stalled_for_s": round(self._stall, 1)},
        )
        return True
