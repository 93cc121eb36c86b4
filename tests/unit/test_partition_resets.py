"""PartitionResetGuard's decisions, on a stand-in consumer (with the real broker: the
broker-restart chaos scenario, tests/integration/test_chaos_short.py)."""

from __future__ import annotations

import logging

import pytest
from kafka.structs import TopicPartition

from hub.kafka.resets import PartitionResetGuard

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class Cluster:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def topic_id(self, topic: str) -> str | None:
        return self.ids.get(topic)


class Consumer:
    def __init__(self) -> None:
        self._cluster = Cluster()
        self.sought: list[tuple[TopicPartition, ...]] = []

    def assignment(self) -> set[TopicPartition]:
        return {A0, A1, B0}

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.sought.append(partitions)


def test_a_changed_topic_id_resets_that_topics_partitions_only() -> None:
    consumer = Consumer()
    consumer._cluster.ids = {"a": "id-1", "b": "id-2"}
    guard = PartitionResetGuard("t")
    assert guard.check(consumer) == []
    consumer._cluster.ids["a"] = "id-3"
    assert guard.check(consumer) == [A0, A1]
    assert consumer.sought == [(A0, A1)]
    assert guard.check(consumer) == [], "the new id is the known one now"


def test_an_unknown_topic_id_is_not_a_change() -> None:
    consumer = Consumer()
    consumer._cluster.ids = {"a": "id-1"}
    guard = PartitionResetGuard("t")
    guard.check(consumer)
    consumer._cluster.ids = {}
    assert guard.check(consumer) == []
    consumer._cluster.ids = {"a": "id-1"}
    assert guard.check(consumer) == []


def test_nothing_to_do_without_an_assignment() -> None:
    class Unassigned(Consumer):
        def assignment(self) -> set[TopicPartition]:
            return set()

    consumer = Unassigned()
    consumer._cluster.ids = {"a": "id-1"}
    assert PartitionResetGuard("t").check(consumer) == []


def test_partitions_handed_out_again_soon_after_a_recreation_are_read_from_the_start() -> None:
    consumer = Consumer()
    consumer._cluster.ids = {"a": "id-1", "b": "id-2"}
    guard = PartitionResetGuard("t", grace_seconds=60)
    guard.check(consumer)
    consumer._cluster.ids["a"] = "id-3"
    guard.check(consumer)
    # The group re-joins (the broker forgot it) and starts from committed offsets again.
    guard.on_partitions_assigned([A0, A1, B0])
    assert guard.check(consumer) == [A0, A1], "b was not re-created"
    assert guard.check(consumer) == [], "once per hand-out"


def test_no_re_seek_on_assignment_without_or_long_after_a_recreation() -> None:
    consumer = Consumer()
    consumer._cluster.ids = {"a": "id-1"}
    guard = PartitionResetGuard("t", grace_seconds=60)
    guard.check(consumer)
    guard.on_partitions_assigned([A0, A1])
    assert guard.check(consumer) == []
    expired = PartitionResetGuard("t", grace_seconds=0)
    expired.check(consumer)
    consumer._cluster.ids["a"] = "id-2"
    expired.check(consumer)
    expired.on_partitions_assigned([A0, A1])
    assert expired.check(consumer) == []


def test_kafka_python_still_has_the_attributes_the_guard_reads() -> None:
    from kafka import KafkaConsumer
    from kafka.cluster import ClusterMetadata

    assert callable(ClusterMetadata.topic_id)
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", api_version=(2, 8))
    try:
        assert isinstance(consumer._cluster, ClusterMetadata)
    finally:
        consumer.close()


def test_assignments_and_revocations_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The operator sees when a consumer actually got its partitions (and when it lost them)."""
    guard = PartitionResetGuard("timeline")
    with caplog.at_level(logging.INFO, logger="hub.kafka.resets"):
        guard.on_partitions_revoked(set())  # before the first join: nothing to say
        guard.on_partitions_assigned(iter([B0, A1, A0]))  # the client hands out any iterable
        guard.on_partitions_revoked({A0})
    logged = [
        (r.getMessage(), r.__dict__["consumer"], r.__dict__["partitions"]) for r in caplog.records
    ]
    assert logged == [
        ("consumer.partitions_assigned", "timeline", "a[0],a[1],b[0]"),
        ("consumer.partitions_revoked", "timeline", "a[0]"),
    ]
