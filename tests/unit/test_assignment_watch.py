"""AssignmentWatch's decisions, on a stand-in group member (with the real broker:
tests/integration/test_embedded_broker.py, a consumer that joined before its topic existed)."""

from __future__ import annotations

from typing import Any

from kafka.structs import TopicPartition

from hub.kafka.rejoins import AssignmentWatch

TOPIC = "hub.events.v1"


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, p) for p in partitions}


class Assignment:
    def __init__(self, partitions: set[TopicPartition]) -> None:
        self._partitions = partitions

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._partitions)


class Coordinator:
    def __init__(self) -> None:
        self._is_leader = False
        self.rebalancing = False
        self.rejoin_needed = False
        self.left: list[str] = []
        self.shares: dict[str, set[TopicPartition]] = {}

    def _perform_assignment(self, leader_id: str, protocol: str, members: Any) -> dict[str, Any]:
        self._is_leader = True
        return {member: Assignment(share) for member, share in self.shares.items()}

    def rebalance_in_progress(self) -> bool:
        return self.rebalancing

    def need_rejoin(self) -> bool:
        return self.rejoin_needed

    def maybe_leave_group(self, reason: str | None = None, timeout_ms: int | None = None) -> None:
        self.left.append(reason or "")
        self._is_leader = False


class Consumer:
    def __init__(self) -> None:
        self._coordinator = Coordinator()
        self.assigned: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def join_as_leader(
        self, shares: dict[str, set[TopicPartition]], got: set[TopicPartition]
    ) -> None:
        """A join this member leads: it makes ``shares``, the broker hands it ``got``."""
        self._coordinator.shares = shares
        self._coordinator._perform_assignment("me", "range", [])
        self.assigned = got


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watched() -> tuple[Consumer, Clock, AssignmentWatch]:
    consumer, clock = Consumer(), Clock()
    watch = AssignmentWatch("t", mismatch_seconds=1.0, clock=clock)
    watch.attach(consumer)
    return consumer, clock, watch


def test_a_leader_handed_another_assignment_than_its_own_leaves_and_joins_anew() -> None:
    consumer, clock, watch = watched()
    consumer.join_as_leader({"me": tps(0, 1, 2, 3, 4, 5)}, got=set())
    assert not watch.check(consumer)  # first sighting
    clock.now += 0.9
    assert not watch.check(consumer)
    clock.now += 0.2
    assert watch.check(consumer)
    assert len(consumer._coordinator.left) == 1
    clock.now += 10
    assert not watch.check(consumer)  # acts once per assignment it made


def test_a_leader_given_what_it_made_is_left_alone() -> None:
    consumer, clock, watch = watched()
    consumer.join_as_leader({"me": tps(0, 1, 2), "other": tps(3, 4, 5)}, got=tps(0, 1, 2))
    for _ in range(5):
        assert not watch.check(consumer)
        clock.now += 10
    assert consumer._coordinator.left == []


def test_a_member_another_leader_assigned_is_left_alone() -> None:
    consumer, clock, watch = watched()
    consumer.join_as_leader({"me": tps(0, 1, 2, 3, 4, 5)}, got=tps(0, 1, 2, 3, 4, 5))
    # A later join led by another member: kafka-python clears the leader flag.
    consumer._coordinator._is_leader = False
    consumer.assigned = tps(0, 1)
    for _ in range(5):
        assert not watch.check(consumer)
        clock.now += 10
    assert consumer._coordinator.left == []


def test_nothing_is_judged_while_a_join_is_under_way() -> None:
    consumer, clock, watch = watched()
    consumer.join_as_leader({"me": tps(0, 1, 2, 3)}, got=set())
    consumer._coordinator.rebalancing = True
    for _ in range(3):
        assert not watch.check(consumer)
        clock.now += 10
    consumer._coordinator.rebalancing = False
    consumer._coordinator.rejoin_needed = True
    assert not watch.check(consumer)
    consumer._coordinator.rejoin_needed = False
    assert not watch.check(consumer)  # the clock starts when the member is settled
    clock.now += 1.1
    assert watch.check(consumer)


def test_a_consumer_without_a_group_member_is_ignored() -> None:
    watch = AssignmentWatch("t")
    watch.attach(object())
    assert not watch.check(object())
