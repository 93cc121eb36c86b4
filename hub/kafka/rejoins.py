"""Consumers whose group join went wrong join again: one left unfinished, and a leader the
broker handed another assignment than the one it made (``AssignmentWatch``, below).

kafka-python 3.0 drives a group join from ``poll`` only while the coordinator's
``need_rejoin()`` is true. A join that started because the topic metadata changed (a topic
re-created with another partition count, as after the embedded broker restarts) can finish
after the metadata has settled again: ``need_rejoin()`` is then false, nothing collects the
finished join, and the member stays "rebalancing" for good, with no assignment callback, no
heartbeats and no fetches. A delivery consumer in that state sat idle for 50 s while its
partner's records piled up (docs/chaos.md, finding 6).

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


class _Lasting:
    """Whether a condition, looked at once per poll loop, has held for ``seconds`` on end."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._since: float | None = None

    def held(self, holds: bool) -> bool:
        """True once the condition has held long enough; the count then starts again."""
        if not holds:
            self._since = None
            return False
        now = self._clock()
        if self._since is None:
            self._since = now
            return False
        if now - self._since < self.seconds:
            return False
        self._since = None
        return True


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
        self._stalled = _Lasting(stall_seconds, clock)

    def check(self, consumer: Any) -> bool:
        """Ask a stalled member to join again; True when it did."""
        coordinator = getattr(consumer, "_coordinator", None)  # kafka-python's group member
        stalled = (
            coordinator is not None
            and coordinator.rebalance_in_progress()
            and not coordinator.need_rejoin()  # a join being driven is given its time
        )
        if not self._stalled.held(stalled) or coordinator is None:
            return False
        coordinator.request_rejoin()
        log.warning(
            "consumer.join_stalled",
            extra={"consumer": self._name, "stalled_for_s": round(self._stalled.seconds, 1)},
        )
        return True


#: How long a leader's assignment may differ from the one it made before it joins anew.
MISMATCH_SECONDS = 1.0


class AssignmentWatch:
    """A group leader that was handed another assignment than the one it made joins again as a
    new member. ``attach(consumer)`` once, then ``check(consumer)`` once per poll loop.

    The embedded broker (Tansu 0.6) keeps a group's generation when its only member joins again
    under the same member id, and answers that leader's SyncGroup with the assignment of the
    generation's first sync instead of the new one. A consumer that had joined while its topic
    did not exist (after a broker restart, before the relay made the topics again) so kept an
    empty assignment for good, one that had joined while the topic had other partitions kept
    those: the timeline consumer once read 4 of 6 partitions and another time none, until the
    chaos scenario's drain gave up (docs/chaos.md, finding 10). kafka-python sees nothing
    wrong: its record of the assignment is the one it sent. Joining again under the same id
    changes nothing; leaving the group and joining as a new member gets the leader's
    assignment (``tests/integration/test_embedded_broker.py``). Apache Kafka starts a new
    generation with every join round, so there the watch is not expected to act.
    """

    def __init__(
        self,
        name: str,
        *,
        mismatch_seconds: float = MISMATCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._differs = _Lasting(mismatch_seconds, clock)
        #: What this member, as leader of the last join, assigned to itself.
        self._made: set[Any] | None = None

    def attach(self, consumer: Any) -> None:
        """Note the share each assignment this member makes as leader gives itself."""
        coordinator: Any = getattr(consumer, "_coordinator", None)  # kafka-python's group member
        perform = getattr(coordinator, "_perform_assignment", None)
        if perform is None:
            return

        def performing(leader_id: str, protocol: str, members: Any) -> Any:
            assignments = perform(leader_id, protocol, members)
            own = assignments.get(leader_id)
            self._made = None if own is None else set(own.partitions())
            return assignments

        coordinator._perform_assignment = performing

    def check(self, consumer: Any) -> bool:
        """Leave the group and join again when the assignment is not the one made; True then."""
        coordinator = getattr(consumer, "_coordinator", None)
        made = self._made
        differs = (
            coordinator is not None
            and made is not None
            and getattr(coordinator, "_is_leader", False)  # not when another member assigned
            and not coordinator.rebalance_in_progress()
            and not coordinator.need_rejoin()
            and set(consumer.assignment()) != made
        )
        if not self._differs.held(differs) or coordinator is None or made is None:
            return False
        got = set(consumer.assignment())
        self._made = None
        log.warning(
            "consumer.assignment_not_the_leaders",
            extra={"consumer": self._name, "made": len(made), "got": len(got)},
        )
        coordinator.maybe_leave_group(
            reason="assignment differs from the leader's", timeout_ms=5000
        )
        return True
