"""StalledJoinWatch's decisions, on a stand-in group member (with the real broker: the
broker-restart chaos scenario, tests/integration/test_chaos_short.py)."""

from __future__ import annotations

from hub.kafka.rejoins import StalledJoinWatch


class Coordinator:
    def __init__(self) -> None:
        self.rebalancing = False
        self.rejoin_needed = False
        self.rejoins_requested = 0

    def rebalance_in_progress(self) -> bool:
        return self.rebalancing

    def need_rejoin(self) -> bool:
        return self.rejoin_needed

    def request_rejoin(self) -> None:
        self.rejoins_requested += 1


class Consumer:
    def __init__(self) -> None:
        self._coordinator = Coordinator()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_member_rebalancing_with_nothing_driving_the_join_is_asked_to_join_again() -> None:
    consumer, clock = Consumer(), Clock()
    watch = StalledJoinWatch("t", stall_seconds=3.0, clock=clock)
    consumer._coordinator.rebalancing = True
    assert not watch.check(consumer)  # first sighting
    clock.now += 2.9
    assert not watch.check(consumer)
    clock.now += 0.2
    assert watch.check(consumer)
    assert consumer._coordinator.rejoins_requested == 1
    assert not watch.check(consumer)  # the clock starts again after asking


def test_a_join_in_progress_is_left_alone_however_long_it_takes() -> None:
    consumer, clock = Consumer(), Clock()
    watch = StalledJoinWatch("t", stall_seconds=3.0, clock=clock)
    consumer._coordinator.rebalancing = True
    consumer._coordinator.rejoin_needed = True
    for _ in range(10):
        assert not watch.check(consumer)
        clock.now += 60
    assert consumer._coordinator.rejoins_requested == 0


def test_a_stable_member_in_between_resets_the_clock() -> None:
    consumer, clock = Consumer(), Clock()
    watch = StalledJoinWatch("t", stall_seconds=3.0, clock=clock)
    consumer._coordinator.rebalancing = True
    watch.check(consumer)
    clock.now += 2.0
    consumer._coordinator.rebalancing = False
    watch.check(consumer)
    consumer._coordinator.rebalancing = True
    clock.now += 2.0
    assert not watch.check(consumer)
    clock.now += 2.0
    assert not watch.check(consumer)  # only 2 s since it was seen stalled again
    clock.now += 1.5
    assert watch.check(consumer)


def test_a_consumer_without_a_group_member_is_ignored() -> None:
    assert not StalledJoinWatch("t").check(object())
