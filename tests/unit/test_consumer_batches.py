"""A polled batch is applied in one transaction, or record by record when anything is off.

Handlers here write a marker into the consumer inbox of a second, made-up consumer, so the
effect and its inbox row share the database (as every real handler's do).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition
from sqlalchemy import func, select

from consumers.runner import ConsumerRunner, Context, Event
from hub.events.models import ProcessedEvent
from hub.events.service import mark_processed
from hub.kafka.cloudevents import to_headers
from schemas.cloudevents import CloudEventAttributes, EventType
from tests.hubtest import make_hub


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def record(offset: int, event_id: str, value: bytes | None = b"{}", partition: int = 0) -> Record:
    attrs = CloudEventAttributes(
        id=event_id,
        source="/partners/ude",
        type=EventType.REFERRAL_REQUESTED,
        time=datetime.now(UTC),
        partitionkey="p_1",
    )
    return Record("hub.events.v1", partition, offset, b"p_1", value, to_headers(attrs))


class Handler:
    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.sessions: set[int] = set()
        self.fail_on = fail_on or set()

    def __call__(self, event: Event, ctx: Context) -> None:
        self.calls.append(event.attrs.id)
        self.sessions.add(id(ctx.session))
        if event.attrs.id in self.fail_on:
            raise RuntimeError("handler failed")
        mark_processed(ctx.session, consumer="effects", event_id=event.attrs.id)


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, bytes]]] = []

    def send(self, topic: str, *, key: Any, value: Any, headers: Any) -> Any:
        self.sent.append((topic, dict(headers)))

        class Sent:
            def get(self, timeout: float) -> None:
                return None

        return Sent()


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    made, _ = make_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path, consumer_max_attempts=2)
    yield made
    made.engine.dispose()


def runner(hub: Any, handler: Handler, producer: Producer, wants: Any = None) -> ConsumerRunner:
    return ConsumerRunner(
        name="batch-test",
        handler=handler,
        topics=lambda: ["hub.events.v1"],
        session_factory=hub.session_factory,
        settings=hub.settings,
        catalogue=hub.catalogue,
        policy=hub.policy,
        consumer_factory=lambda topics, listener: None,
        producer_factory=lambda: producer,
        wants=wants,
    )


def effects(hub: Any) -> list[str]:
    with hub.session_factory() as s:
        stmt = select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == "effects")
        return sorted(s.scalars(stmt))


def inbox(hub: Any) -> int:
    with hub.session_factory() as s:
        stmt = select(func.count()).where(ProcessedEvent.consumer == "batch-test")
        return int(s.scalar(stmt) or 0)


def test_a_batch_applies_each_event_once_even_when_repeated(hub: Any) -> None:
    handler = Handler()
    r = runner(hub, handler, Producer())
    first = [record(0, "e-1"), record(1, "e-2"), record(2, "e-1")]  # e-1 repeated in the batch
    assert r._apply_all(first, threading.Event()) == 2
    assert r._apply_all([record(3, "e-2"), record(4, "e-3")], threading.Event()) == 4
    assert handler.calls == ["e-1", "e-2", "e-3"]
    assert effects(hub) == ["e-1", "e-2", "e-3"]
    assert inbox(hub) == 3


def test_a_failing_record_leaves_nothing_of_the_batch_then_the_rest_is_applied(
    hub: Any,
) -> None:
    handler = Handler(fail_on={"e-2"})
    producer = Producer()
    r = runner(hub, handler, producer)
    batch = [record(0, "e-1"), record(1, "e-2"), record(2, "e-3")]
    assert r._apply_all(batch, threading.Event()) == 2
    assert effects(hub) == ["e-1", "e-3"], "e-1 of the rolled-back batch applied once"
    assert [t for t, _ in producer.sent] == ["hub.deadletter.v1"]
    assert producer.sent[0][1]["ce_id"] == b"e-2"
    # batch try (e-1, e-2), then singly: e-1, e-2 twice (max attempts 2), e-3
    assert handler.calls == ["e-1", "e-2", "e-1", "e-2", "e-2", "e-3"]


def test_a_poison_record_sends_the_batch_the_single_way(hub: Any) -> None:
    handler = Handler()
    producer = Producer()
    r = runner(hub, handler, producer)
    batch = [record(0, "e-1"), record(1, "e-2", value=json.dumps([1]).encode()), record(2, "e-3")]
    assert r._apply_all(batch, threading.Event()) == 2
    assert effects(hub) == ["e-1", "e-3"]
    assert handler.calls == ["e-1", "e-3"], "nothing ran in a batch that could not decode"
    assert [h["ce_id"] for _, h in producer.sent] == [b"e-2"]


def test_a_poll_over_several_partitions_is_one_transaction_with_offsets_for_each(
    hub: Any,
) -> None:
    handler = Handler()
    r = runner(hub, handler, Producer())
    p0, p1 = TopicPartition("hub.events.v1", 0), TopicPartition("hub.events.v1", 1)
    poll = {
        p0: [record(0, "e-1"), record(1, "e-2")],
        p1: [record(5, "e-3", partition=1)],
    }
    assert r._apply_poll(poll, threading.Event()) == {p0: 2, p1: 6}
    assert len(handler.sessions) == 1
    assert effects(hub) == ["e-1", "e-2", "e-3"]


def test_a_failing_record_in_a_poll_holds_back_only_its_own_partition_batch(hub: Any) -> None:
    handler = Handler(fail_on={"e-3"})
    producer = Producer()
    r = runner(hub, handler, producer)
    p0, p1 = TopicPartition("hub.events.v1", 0), TopicPartition("hub.events.v1", 1)
    poll = {
        p0: [record(0, "e-1"), record(1, "e-2")],
        p1: [record(5, "e-3", partition=1), record(6, "e-4", partition=1)],
    }
    assert r._apply_poll(poll, threading.Event()) == {p0: 2, p1: 7}
    assert effects(hub) == ["e-1", "e-2", "e-4"]
    assert [h["ce_id"] for _, h in producer.sent] == [b"e-3"]


def routed_record(offset: int, event_id: str, *, routed: bool, partition: int = 0) -> Record:
    attrs = CloudEventAttributes(
        id=event_id,
        source="/partners/ude",
        type=EventType.REFERRAL_REQUESTED,
        time=datetime.now(UTC),
        partitionkey="p_1",
        extensions={"routed": "1"} if routed else {},
    )
    return Record("hub.events.v1", partition, offset, b"p_1", b"{}", to_headers(attrs))


def test_a_poll_of_events_the_handler_does_not_want_costs_no_transaction(hub: Any) -> None:
    from consumers import router

    handler = Handler()
    r = runner(hub, handler, Producer(), wants=router.wants)
    opened: list[int] = []
    real = hub.session_factory

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(1)
        return real(*args, **kwargs)

    r._sessions = counting  # type: ignore[assignment]
    tp0, tp1 = TopicPartition("hub.events.v1", 0), TopicPartition("hub.events.v1", 1)
    passed = {
        tp0: [routed_record(0, "r-1", routed=True), routed_record(1, "r-2", routed=True)],
        tp1: [routed_record(0, "r-3", routed=True, partition=1)],
    }
    assert r._apply_poll(passed, threading.Event()) == {tp0: 2, tp1: 1}
    assert opened == [] and handler.calls == [] and inbox(hub) == 0
    # A poll with work in it: the wanted event is applied and marked, the other passed by.
    mixed = {tp0: [routed_record(2, "r-4", routed=True), routed_record(3, "u-1", routed=False)]}
    assert r._apply_poll(mixed, threading.Event()) == {tp0: 4}
    assert handler.calls == ["u-1"] and inbox(hub) == 1
