"""A delivery poll pushes different persons' events at once, each person's in order.

The partner here is a fake deliverer that takes ``delay`` seconds per message and notes the
order and overlap of what it receives; the database is a real (SQLite) hub.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.structs import TopicPartition
from sqlalchemy import event, func, select

from connectors.base import DeliveryResult, OutboundMessage
from consumers.delivery import DeliveryRunner
from hub.deliveries.models import DeliveryState
from hub.events.models import ProcessedEvent
from hub.kafka.cloudevents import to_headers
from schemas.cloudevents import CloudEventAttributes, EventType
from tests.hubtest import make_hub

PARTNER = "amt"
TOPIC = "hub.deliveries.amt.v1"


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class Partner:
    """Takes ``delay`` per message; answers from ``script`` (event id -> outcomes) or delivered."""

    def __init__(self, delay: float = 0.0, script: dict[str, list[str]] | None = None) -> None:
        self.delay = delay
        self.script = script or {}
        self.lock = threading.Lock()
        self.received: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
            answers = self.script.get(message.event_id, [])
            answer = answers.pop(0) if answers else "delivered"
            if answer == "delivered":
                self.received.append(message.event_id)
        if answer == "permanent":
            return DeliveryResult("permanent", reason="400 not accepted", status_code=400)
        if answer == "transient":
            return DeliveryResult("transient", reason="503", retry_after=0.01)
        return DeliveryResult("delivered", status_code=200)

    def close(self) -> None:
        pass


class Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, topic: str, *, key: Any, value: Any, headers: Any) -> Any:
        self.sent.append(dict(headers)["ce_id"])
        return SimpleNamespace(get=lambda timeout: None)

    def close(self, timeout: float) -> None:
        pass


def routed(offset: int, person: str, partition: int = 0) -> Record:
    """A routed ``referral.requested`` for ``person`` at ``offset``."""
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    attrs = CloudEventAttributes(
        id=event_id,
        source="/hub",
        type=EventType.REFERRAL_REQUESTED,
        time=now,
        subject=str(uuid.uuid4()),
        partitionkey=person,
    )
    data = {
        "event_id": event_id,
        "referral_id": attrs.subject,
        "person_id": person,
        "acting_partner": "ude",
        "occurred_at": now.isoformat(),
        "recorded_at": now.isoformat(),
        "correlation_id": str(uuid.uuid4()),
        "referral_type": "residence.student",
    }
    value = json.dumps(data).encode()
    return Record(TOPIC, partition, offset, person.encode(), value, to_headers(attrs))


def ids(records: list[Record]) -> list[str]:
    return [dict(r.headers)["ce_id"].decode() for r in records]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Any]:
    made, _ = make_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    yield made
    made.engine.dispose()


def runner(hub: Any, partner: Partner, producer: Producer, concurrency: int = 16) -> Any:
    outbound = SimpleNamespace(to_native=lambda event_type, data: {"id": data["event_id"]})
    return DeliveryRunner(
        partner_id=PARTNER,
        connector=SimpleNamespace(kind="fake", outbound=outbound),  # type: ignore[arg-type]
        deliverer=partner,
        session_factory=hub.session_factory,
        settings=hub.settings,
        consumer_factory=lambda topics, listener: None,
        producer_factory=lambda: producer,
        initial_backoff=0.01,
        concurrency=concurrency,
    )


def recorded(hub: Any) -> set[str]:
    with hub.session_factory() as s:
        stmt = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == f"delivery.{PARTNER}"
        )
        return set(s.scalars(stmt))


def test_persons_are_pushed_at_once_and_each_persons_events_in_order(hub: Any) -> None:
    partner = Partner(delay=0.3)
    records = [routed(n, f"p_{n % 8}") for n in range(24)]  # 8 persons, 3 events each
    tp = TopicPartition(TOPIC, 0)
    began = time.perf_counter()
    offsets = runner(hub, partner, Producer()).settle({tp: records}, threading.Event())
    took = time.perf_counter() - began
    assert offsets == {tp: 24}
    assert took < 3 * 0.3 + 0.6, f"8 persons x 3 events took {took:.2f} s, not about 3 delays"
    assert partner.most_in_flight == 8
    for person in range(8):
        own = ids([r for r in records if r.key == f"p_{person}".encode()])
        assert [e for e in partner.received if e in own] == own, "one person's events in order"
    assert recorded(hub) == set(ids(records))


def test_a_repeat_is_not_pushed_again(hub: Any) -> None:
    partner = Partner()
    first = [routed(0, "p_1"), routed(1, "p_2")]
    tp = TopicPartition(TOPIC, 0)
    run = runner(hub, partner, Producer())
    assert run.settle({tp: first}, threading.Event()) == {tp: 2}
    # re-delivered after a crash, then the same event once more within the poll
    again = [*first, routed(2, "p_1"), replace(first[0], offset=3)]
    assert run.settle({tp: again}, threading.Event()) == {tp: 4}
    # Different people's events go out concurrently: their order is not promised, only
    # that each is pushed once and the new one comes after the repeats were skipped.
    assert sorted(partner.received[:2]) == sorted(ids(first))
    assert partner.received[2:] == [ids(again)[2]]


def test_an_outage_pauses_the_partner_and_a_rejection_dead_letters_only_that_message(
    hub: Any,
) -> None:
    records = [routed(n, f"p_{n % 3}") for n in range(6)]
    flaky, refused = ids(records)[0], ids(records)[4]
    partner = Partner(script={flaky: ["transient", "transient"], refused: ["permanent"]})
    producer = Producer()
    tp = TopicPartition(TOPIC, 0)
    assert runner(hub, partner, producer).settle({tp: records}, threading.Event()) == {tp: 6}
    assert producer.sent == [refused.encode()]
    assert sorted(partner.received) == sorted(e for e in ids(records) if e != refused)
    person_0 = [e for e in ids(records)[0::3]]
    assert [e for e in partner.received if e in person_0] == person_0
    with hub.session_factory() as s:
        state = s.get(DeliveryState, PARTNER)
        assert state is not None
        assert (state.paused, state.delivered, state.dead_lettered) == (False, 5, 1)


def test_stopping_in_an_outage_commits_only_up_to_the_first_unsettled_record(hub: Any) -> None:
    p0 = TopicPartition(TOPIC, 0)
    p1 = TopicPartition(TOPIC, 1)
    batch = {
        p0: [routed(0, "p_ok"), routed(1, "p_down"), routed(2, "p_ok"), routed(3, "p_down")],
        p1: [routed(7, "p_other", partition=1)],
    }
    down = ids(batch[p0])[1]
    partner = Partner(script={down: ["transient"] * 10_000})
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    offsets = runner(hub, partner, Producer()).settle(batch, stop)
    assert offsets == {p0: 1, p1: 8}
    assert ids(batch[p0])[3] not in partner.received, "p_down's second event waits its turn"
    delivered = {ids(batch[p0])[0], ids(batch[p0])[2], ids(batch[p1])[0]}
    assert set(partner.received) == delivered
    assert recorded(hub) == delivered, "what the partner took is recorded, not pushed again"
    with hub.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) >= 3


def test_a_delivered_poll_costs_two_reads_and_one_write_per_table(hub: Any) -> None:
    """Two reads before the push (marks, keys); after it the mark, the audit record and the
    outcome event go as staged rows (one executemany per table on SQLite, one statement on
    PostgreSQL) and the partner's counts as one upsert, not a read and an update."""
    run = runner(hub, Partner(), Producer())
    tp = TopicPartition(TOPIC, 0)
    run.settle({tp: [routed(0, "p_0")]}, threading.Event())  # the state row exists now
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.upper().startswith("BEGIN"):  # SQLite's own, not a statement of ours
            statements.append(statement.split()[0].upper())

    event.listen(hub.engine, "before_cursor_execute", note)
    try:
        assert run.settle({tp: [routed(1, "p_1")]}, threading.Event()) == {tp: 2}
    finally:
        event.remove(hub.engine, "before_cursor_execute", note)
    assert statements.count("SELECT") == 2, statements
    assert statements.count("UPDATE") == 0, statements
    assert len(statements) == 6, statements
    with hub.session_factory() as s:
        state = s.get(DeliveryState, PARTNER)
        assert state is not None
        assert (state.paused, state.delivered) == (False, 2)
