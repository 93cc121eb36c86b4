"""Push delivery: one consumer per push-mode partner, posting routed events to its endpoint.

A poll is settled as a whole. Its records are grouped by person (the Kafka key): different
persons' events are pushed concurrently, one person's strictly in offset order, each after
the one before it was settled. Then every outcome is recorded in one transaction, and the
offsets are committed once, up to the first record not settled.

Unlike the generic runner, a failure here is usually the partner's, not the record's:
- transient (down, slow, 5xx, 429): the same record is retried with backoff for as long as
  it takes; the partner shows as paused; nothing is dead-lettered, nothing is skipped, and
  since every partner has its own consumer, the others keep flowing;
- permanent (a 4xx rejection of this message, or a payload the connector cannot map): the
  record goes to the dead-letter topic and a ``delivery-failed`` event reaches the timeline;
- delivered: recorded with the event id in the same transaction as ``referral.delivered``,
  so a repeat (re-delivery after a crash, a second replay) is skipped; the partner also
  receives the event id as ``Idempotency-Key``, which covers a crash between its answer and
  our record;
- held: a record of a consent-based route is checked against the person's consent right
  before each push (the router's check, hub/routing/service.py). Once the consent is gone it
  is never pushed: it is held exactly like the router holds an event, its offset is
  committed, and it is *not* marked delivered, so the copy a release stages after a new
  consent goes out once; a repeat of the record meets its hold and is held again.
The HTTP calls are made outside any database transaction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from kafka.structs import TopicPartition
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import ConnectorKind, Deliverer, MappingError, OutboundMessage
from consumers.pause import Pause
from consumers.runner import (
    POISON,
    Event,
    LagMeter,
    commit_offsets,
    consume_span,
    decode,
    send_deadletter,
    until_database_answers,
)
from hub import telemetry
from hub.crypto.cipher import ERASED
from hub.crypto.fields import load_keys, open_event
from hub.db import unit_of_work
from hub.deliveries import service
from hub.events.service import processed_among
from hub.kafka.client import consumer_group
from hub.kafka.rejoins import AssignmentWatch, StalledJoinWatch
from hub.kafka.resets import PartitionResetGuard
from hub.policy.model import Policy, load_policy
from hub.routing import service as routing
from hub.settings import Settings
from schemas.catalogue import load_catalogue

log = logging.getLogger(__name__)

#: Pushes in flight to one partner at a time (different persons); httpx pools as many.
CONCURRENT_PUSHES = 16

Outcome = Literal["delivered", "rejected", "done", "held"]


@dataclass
class Item:
    """One polled record and what became of it; ``outcome`` None: not settled yet."""

    tp: TopicPartition
    record: Any
    event: Event | None = None
    message: OutboundMessage | None = None
    outcome: Outcome | None = None
    reason: str = ""
    status_code: int | None = None


class DeliveryRunner:
    """Delivers one partner's routed events to its endpoint, each person's in order."""

    def __init__(
        self,
        *,
        partner_id: str,
        connector: ConnectorKind,
        deliverer: Deliverer,
        session_factory: sessionmaker[Session],
        settings: Settings,
        consumer_factory: Callable[[list[str], Any], Any],
        producer_factory: Callable[[], Any],
        initial_backoff: float = 0.5,
        concurrency: int = CONCURRENT_PUSHES,
        policy: Policy | None = None,
    ) -> None:
        self.partner_id = partner_id
        self.name = service.consumer_name(partner_id)
        self._group = consumer_group(settings, self.name)
        self._connector = connector
        self._deliverer = deliverer
        self._sessions = session_factory
        self._settings = settings
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pause = Pause(initial_backoff)
        # The route policy the hub runs with (bootstrap loads the same one).
        self._policy = policy or load_policy(load_catalogue(), settings.policy_file)

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; offsets are committed per poll, after its outcomes."""
        topics = [self._settings.deliveries_topic(self.partner_id)]
        resets = PartitionResetGuard(self.name)
        stalls = StalledJoinWatch(self.name)
        misassigned = AssignmentWatch(self.name)
        consumer = self._consumer_factory(topics, resets)
        misassigned.attach(consumer)
        log.info("delivery.started", extra={"partner": self.partner_id})
        try:
            lag = LagMeter(self.name)
            while not stop.is_set():
                batch = consumer.poll(timeout_ms=500)
                done = self.settle(batch, stop) if batch else {}
                if done:
                    commit_offsets(consumer, done, consumer_name=self.name)
                resets.check(consumer)
                stalls.check(consumer)
                misassigned.check(consumer)
                lag.maybe_measure(consumer)
        finally:
            consumer.close(autocommit=False)
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None  # a restarted run() gets a fresh one
            self._deliverer.close()
            if self._producer is not None:
                self._producer.close(timeout=5)
            log.info("delivery.stopped", extra={"partner": self.partner_id})

    def settle(
        self, batch: dict[TopicPartition, list[Any]], stop: threading.Event
    ) -> dict[TopicPartition, int]:
        """Push and record one poll; per partition, the offset to commit (absent: none)."""
        items = [Item(tp, record) for tp, records in batch.items() for record in records]
        for item in items:
            try:
                item.event = decode(item.record)
            except POISON as exc:
                item.outcome, item.reason = "rejected", repr(exc)
        if not until_database_answers(stop, lambda: self._prepare(items), name=self.name):
            return {}
        chains = by_person(i for i in items if i.outcome is None)
        if self._pool is None:
            name = f"push.{self.partner_id}"
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix=name)
        pushing = [self._pool.submit(self._push_chain, c, stop) for c in chains]
        for future in pushing:
            future.result()
        if not self._record(items, stop):
            return {}
        return offsets_to_commit(items)

    def _prepare(self, items: list[Item]) -> None:
        """Skip what the partner has already; map the rest (reads only: safe to repeat)."""
        events = [i for i in items if i.event is not None]
        for item in events:
            item.outcome, item.message, item.reason, item.status_code = None, None, "", None
        with self._sessions() as session:
            done = processed_among(
                session, consumer=self.name, ids=[i.event.attrs.id for i in events if i.event]
            )
            # The poll's people's keys in one query, not one per event opened below.
            load_keys(
                session,
                (
                    str(i.event.data.get("person_id"))
                    for i in events
                    if i.event and i.event.attrs.id not in done
                ),
            )
            for item in events:
                assert item.event is not None
                if item.event.attrs.id in done:
                    item.outcome = "done"
                    continue
                done.add(item.event.attrs.id)  # a repeat within the poll goes out once
                try:
                    item.message = self._message(session, item.event)
                except MappingError as exc:
                    item.outcome = "rejected"
                    item.reason = f"connector cannot map the event: {exc}"
            session.commit()

    def _push_chain(self, chain: list[Item], stop: threading.Event) -> None:
        """One person's events in order; stop at the first that could not be settled."""
        for item in chain:
            with consume_span(item.record, group=self._group):
                self._push(item, stop)
            if item.outcome is None:
                return

    def _push(self, item: Item, stop: threading.Event) -> None:
        """Push one message until the partner takes or refuses it (or we stop)."""
        assert item.message is not None and item.event is not None
        pause = self._pause
        while not stop.is_set():
            pause.wait(stop)
            if stop.is_set() or self._withheld(item, stop):
                return
            result = self._deliverer.deliver(item.message)
            if result.outcome == "delivered":
                pause.succeeded()
                _observe_latency(self.partner_id, item.event)
                item.outcome = "delivered"
                return
            if result.outcome == "permanent":
                item.outcome, item.reason = "rejected", result.reason
                item.status_code = result.status_code
                return
            telemetry.metrics().delivery_retries.add(1, {"partner": self.partner_id})
            wait = pause.failed(result.retry_after)
            if wait is None:  # another push already reported this outage
                continue
            log.warning(
                "delivery.partner_unavailable",
                extra={"partner": self.partner_id, "reason": result.reason, "retry_in": wait},
            )
            until_database_answers(stop, partial(self._unavailable, result.reason), name=self.name)

    def _withheld(self, item: Item, stop: threading.Event) -> bool:
        """True when the record may not be pushed now: it is then held (or we stop)."""
        assert item.event is not None
        attrs, data = item.event.attrs, item.event.data
        if not routing.needs_consent(self._policy, data):
            return False
        reason: list[str | None] = []

        def check() -> None:
            with self._sessions() as session:
                reason[:] = [
                    routing.withheld(
                        session,
                        self._policy,
                        event_id=attrs.id,
                        recipient=self.partner_id,
                        data=data,
                    )
                ]

        if not until_database_answers(stop, check, name=self.name):
            return True  # stopping: left unsettled, delivered again after the restart
        if reason[0] is None:
            return False
        item.outcome, item.reason = "held", reason[0]
        return True

    def _unavailable(self, reason: str) -> None:
        """Show the partner as paused."""
        try:
            with unit_of_work(self._sessions) as session:
                service.record_unavailable(session, partner_id=self.partner_id, reason=reason)
        except IntegrityError:  # another push's pause created the state row meanwhile
            with unit_of_work(self._sessions) as session:
                service.record_unavailable(session, partner_id=self.partner_id, reason=reason)

    def _record(self, items: list[Item], stop: threading.Event) -> bool:
        """Dead-letter the refused, then record every outcome in one transaction."""
        for item in items:
            if item.outcome == "rejected":
                self._deadletter(item.record, item.reason)

        def record() -> None:
            with unit_of_work(self._sessions) as session:
                delivered = 0
                for item in items:
                    if item.event is not None and item.outcome == "held":
                        routing.hold(
                            session,
                            attrs=item.event.attrs,
                            data=item.event.data,
                            recipient=self.partner_id,
                            reason=item.reason,
                        )
                    if item.event is None or item.outcome not in ("delivered", "rejected"):
                        continue
                    attrs, data = item.event.attrs, item.event.data
                    if item.outcome == "delivered":
                        service.record_delivered(
                            session,
                            partner_id=self.partner_id,
                            attrs=attrs,
                            data=data,
                            settings=self._settings,
                        )
                        delivered += 1
                    else:
                        service.record_rejected(
                            session,
                            partner_id=self.partner_id,
                            attrs=attrs,
                            data=data,
                            reason=item.reason,
                            status_code=item.status_code,
                            settings=self._settings,
                        )
                service.count_delivered(session, partner_id=self.partner_id, count=delivered)

        if stop.is_set():  # stopping in an outage: keep what the partner took, if we can
            try:
                record()
            except OperationalError:
                return False
            return True
        # The partner has them: wait out a database outage rather than deliver again.
        return until_database_answers(stop, record, name=self.name)

    def _message(self, session: Session, event: Event) -> OutboundMessage:
        data = open_event(session, str(event.data.get("person_id")), event.data)
        if ERASED in json.dumps(data, ensure_ascii=False):
            raise MappingError("person", "the person's data was erased")
        native = self._connector.outbound.to_native(event.attrs.type, data)
        return OutboundMessage(
            event_id=event.attrs.id,
            event_type=event.attrs.type,
            referral_id=event.attrs.subject,
            body=json.dumps(native).encode(),
        )

    def _deadletter(self, record: Any, reason: str) -> None:
        if self._producer is None:
            self._producer = self._producer_factory()
        send_deadletter(
            self._producer,
            self._settings.topic_deadletter,
            record,
            reason=reason,
            attempts=1,
            consumer=self.name,
        )


def by_person(items: Any) -> list[list[Item]]:
    """Items grouped by person (the record key), each group in poll (offset) order."""
    chains: dict[Any, list[Item]] = {}
    for item in items:
        assert item.event is not None
        key = item.record.key or item.event.attrs.partitionkey or item.event.data.get("person_id")
        chains.setdefault(key, []).append(item)
    return list(chains.values())


def offsets_to_commit(items: list[Item]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last record settled with all before it."""
    offsets: dict[TopicPartition, int] = {}
    blocked: set[TopicPartition] = set()
    for item in items:  # a partition's records are in offset order
        if item.tp in blocked:
            continue
        if item.outcome is None:
            blocked.add(item.tp)
        else:
            offsets[item.tp] = int(item.record.offset) + 1
    return offsets


def _observe_latency(partner_id: str, event: Event) -> None:
    """Seconds from the hub recording the event to the partner acknowledging it."""
    recorded = event.data.get("recorded_at")
    if isinstance(recorded, str):
        try:
            at = datetime.fromisoformat(recorded)
        except ValueError:
            return
        seconds = (datetime.now(UTC) - at).total_seconds()
        telemetry.metrics().delivery_latency.record(max(seconds, 0.0), {"partner": partner_id})
