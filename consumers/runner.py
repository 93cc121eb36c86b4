"""The generic consumer loop. Handlers are plain functions of (event, context).

Commit rules, which make every handler's effect happen exactly once:
- each record is applied in one database transaction that also records its event id in the
  consumer inbox (``processed_events``); a record whose id is already there is skipped; a
  whole poll shares one transaction when nothing in it is unusual;
- Kafka offsets are committed (once per poll) only after that transaction committed, so a
  crash at any point re-delivers the record and the inbox turns the repeat into a no-op;
- a record that cannot be decoded, or whose handler keeps failing, goes to the dead-letter
  topic with error headers; when nothing but dead letters comes out
  (``max_consecutive_deadletters`` in a row, a bad deploy) the consumer stops instead;
- a database outage is not the record's fault: it is retried until the database returns;
- a partition re-created under the consumer (a broker that forgot its topics) is read again
  from its beginning (``hub.kafka.resets``); the inbox drops what was applied already.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hub import gauges, telemetry
from hub.db import unit_of_work
from hub.events.service import already_processed, mark_processed, processed_among
from hub.kafka.client import consumer_group
from hub.kafka.cloudevents import CloudEventError, from_headers
from hub.kafka.rejoins import AssignmentWatch, StalledJoinWatch
from hub.kafka.resets import PartitionResetGuard
from hub.policy.model import Policy
from hub.runtime import WorkerStopped
from hub.settings import Settings
from schemas.catalogue import Catalogue
from schemas.cloudevents import CloudEventAttributes

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """This record can never be applied; retrying is pointless."""


class ConsumerHalted(WorkerStopped):
    """Too many dead letters in a row: stop rather than empty the topic into the DLQ."""


@dataclass(frozen=True)
class Event:
    attrs: CloudEventAttributes
    data: dict[str, Any]
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Context:
    session: Session
    settings: Settings
    catalogue: Catalogue
    policy: Policy


Handler = Callable[[Event, Context], None]
#: Reads what the handler will need for a whole poll at once, before it handles each event.
Prepare = Callable[[list[Event], Context], None]
#: New partners bring new delivery topics; look for them this often.
TOPIC_REFRESH_SECONDS = 10.0
#: How often consumers measure their lag for the metrics.
LAG_SECONDS = 5.0
POISON = (CloudEventError, ValidationError, ValueError, UnicodeDecodeError, PermanentError)


class ConsumerRunner:
    """Runs one handler over its topics as one consumer group member."""

    def __init__(
        self,
        *,
        name: str,
        handler: Handler,
        topics: Callable[[], list[str]],
        session_factory: sessionmaker[Session],
        settings: Settings,
        catalogue: Catalogue,
        policy: Policy,
        consumer_factory: Callable[[list[str], Any], Any],
        producer_factory: Callable[[], Any],
        mark_as: Callable[[Event], str] | None = None,
        wants: Callable[[Event], bool] | None = None,
        prepare: Prepare | None = None,
    ) -> None:
        self.name = name
        self._group = consumer_group(settings, name)
        self._prepare = prepare
        #: Events the handler has no work on are passed by: not handled, not marked, and a
        #: poll of nothing else costs no transaction (the router and events routed at
        #: acceptance). Settlement must not wait for this consumer's mark on them.
        self._wants = wants
        #: The name an applied event is recorded under in the consumer inbox: the runner's,
        #: unless one event is applied once per something else (the inbox: per recipient).
        self._mark_as = mark_as or (lambda _event: name)
        self._handler = handler
        self._topics = topics
        self._sessions = session_factory
        self._settings = settings
        self._catalogue = catalogue
        self._policy = policy
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._deadletters_in_row = 0
        self._refreshed_at = time.monotonic()
        self._resets = PartitionResetGuard(name)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; offsets are committed once per poll, after its effects."""
        found: list[str] = []

        def look() -> None:
            found[:] = self._topics()

        while not found:  # e.g. the inbox consumer while every partner is in push mode
            if not until_database_answers(stop, look, name=self.name):
                return
            if not found and stop.wait(TOPIC_REFRESH_SECONDS):
                return
        topics = found
        resets = self._resets
        stalls = StalledJoinWatch(self.name)
        misassigned = AssignmentWatch(self.name)
        consumer = self._consumer_factory(topics, resets)
        misassigned.attach(consumer)
        log.info("consumer.started", extra={"consumer": self.name, "topics": topics})
        try:
            lag = LagMeter(self.name)
            while not stop.is_set():
                done = self._apply_poll(consumer.poll(timeout_ms=500), stop)
                if done:
                    commit_offsets(consumer, done, consumer_name=self.name)
                topics = self._refresh(consumer, topics)
                resets.check(consumer)
                stalls.check(consumer)
                misassigned.check(consumer)
                lag.maybe_measure(consumer)
        finally:
            consumer.close(autocommit=False)
            if self._producer is not None:
                self._producer.close(timeout=5)
            log.info("consumer.stopped", extra={"consumer": self.name})

    def _apply_poll(
        self, batch: dict[TopicPartition, list[Any]], stop: threading.Event
    ) -> dict[TopicPartition, int]:
        """Apply a poll; per partition, the offset to commit.

        Every partition of the poll in one transaction (one NOTIFY to the relay, one offset
        commit) is what keeps a six-partition topic from costing six of each per poll."""
        records = [record for records in batch.values() for record in records]
        if records and self._nothing_wanted(records):
            telemetry.metrics().events_consumed.add(len(records), {"consumer": self.name})
            return {tp: int(polled[-1].offset) + 1 for tp, polled in batch.items() if polled}
        if len(records) > 1 and len(batch) > 1 and self._apply_together(records):
            return {tp: int(records[-1].offset) + 1 for tp, records in batch.items()}
        done = {}
        for tp, records in batch.items():
            last = self._apply_all(records, stop)
            if last is not None:
                done[tp] = int(last) + 1
        return done

    def _nothing_wanted(self, records: list[Any]) -> bool:
        """True when the handler has work on none of the records (all of them decode)."""
        if self._wants is None:
            return False
        try:
            return not any(self._wants(decode(record)) for record in records)
        except POISON:
            return False  # the record-by-record path dead-letters it

    def _passed_by(self, event: Event) -> bool:
        return self._wants is not None and not self._wants(event)

    def _apply_all(self, records: list[Any], stop: threading.Event) -> int | None:
        """Apply a partition's polled records; the offset of the last one applied."""
        if len(records) > 1 and self._apply_together(records):
            return int(records[-1].offset)
        last = None
        for record in records:
            if not self._apply(record, stop):
                break
            last = record.offset
        return last

    def _apply_together(self, records: list[Any]) -> bool:
        """The fast path: the whole batch in one transaction, one inbox lookup for all.

        Anything unusual (a record that does not decode, a handler error, the database away)
        rolls the whole batch back and returns False; the caller then takes the records one
        by one, where each of those cases has its own handling. Either way every record's
        effect and its inbox row commit together, so nothing is applied twice."""
        try:
            events = [decode(record) for record in records]
        except POISON:
            return False
        try:
            with unit_of_work(self._sessions) as session:
                marks = [self._mark_as(event) for event in events]
                done: set[tuple[str, str]] = set()
                for mark in set(marks):
                    ids = [e.attrs.id for e, m in zip(events, marks, strict=True) if m == mark]
                    done |= {(mark, i) for i in processed_among(session, consumer=mark, ids=ids)}
                context = Context(session, self._settings, self._catalogue, self._policy)
                if self._prepare is not None:
                    self._prepare(
                        [
                            e
                            for e, m in zip(events, marks, strict=True)
                            if (m, e.attrs.id) not in done and not self._passed_by(e)
                        ],
                        context,
                    )
                for record, event, mark in zip(records, events, marks, strict=True):
                    if (mark, event.attrs.id) in done or self._passed_by(event):
                        continue
                    with consume_span(record, group=self._group):
                        self._handler(event, context)
                        mark_processed(session, consumer=mark, event_id=event.attrs.id)
                    done.add((mark, event.attrs.id))
        except Exception as exc:
            log.info(
                "consumer.batch_retried_singly",
                extra={"consumer": self.name, "records": len(records), "error": repr(exc)},
            )
            return False
        self._deadletters_in_row = 0
        telemetry.metrics().events_consumed.add(len(records), {"consumer": self.name})
        return True

    def _apply(self, record: Any, stop: threading.Event) -> bool:
        """Apply one record (in a consumer span continuing the producer's trace)."""
        with consume_span(record, group=self._group):
            applied = self._apply_traced(record, stop)
        if applied:
            telemetry.metrics().events_consumed.add(1, {"consumer": self.name})
        return applied

    def _apply_traced(self, record: Any, stop: threading.Event) -> bool:
        """Apply one record; False only when stopping before it was applied."""
        attempts = 0
        while not stop.is_set():
            try:
                event = decode(record)
                if self._passed_by(event):
                    return True
                mark = self._mark_as(event)
                with unit_of_work(self._sessions) as session:
                    if not already_processed(session, consumer=mark, event_id=event.attrs.id):
                        self._handler(
                            event, Context(session, self._settings, self._catalogue, self._policy)
                        )
                        mark_processed(session, consumer=mark, event_id=event.attrs.id)
                self._deadletters_in_row = 0
                return True
            except POISON as exc:
                self._deadletter(record, exc, attempts + 1)
                return True
            except OperationalError as exc:
                log.warning("consumer.database_unavailable", extra={"error": repr(exc)})
                stop.wait(min(2 ** min(attempts, 4) * 0.25, 5.0))
            except Exception as exc:
                attempts += 1
                log.warning(
                    "consumer.handler_failed",
                    extra={"consumer": self.name, "attempt": attempts, "error": repr(exc)},
                )
                if attempts >= self._settings.consumer_max_attempts:
                    self._deadletter(record, exc, attempts)
                    return True
                stop.wait(min(0.2 * 2**attempts, 5.0))
        return False

    def _deadletter(self, record: Any, exc: BaseException, attempts: int) -> None:
        self._deadletters_in_row += 1
        if self._deadletters_in_row > self._settings.consumer_max_consecutive_deadletters:
            raise ConsumerHalted(f"{self.name}: {self._deadletters_in_row} dead letters in a row")
        if self._producer is None:
            self._producer = self._producer_factory()
        send_deadletter(
            self._producer,
            self._settings.topic_deadletter,
            record,
            reason=repr(exc),
            attempts=attempts,
            consumer=self.name,
        )

    def _refresh(self, consumer: Any, topics: list[str]) -> list[str]:
        now = time.monotonic()
        if now - self._refreshed_at < TOPIC_REFRESH_SECONDS:
            return topics
        self._refreshed_at = now
        try:
            current = self._topics()
        except OperationalError as exc:  # the database is away: keep the topics we have
            log.warning("consumer.database_unavailable", extra={"error": repr(exc)})
            return topics
        if current and sorted(current) != sorted(topics):
            consumer.subscribe(topics=current, listener=self._resets)
            log.info("consumer.resubscribed", extra={"consumer": self.name, "topics": current})
        return current


class LagMeter:
    """Measures the consumer lag now and then (it asks the broker for end offsets)."""

    def __init__(self, group: str, every_seconds: float = LAG_SECONDS) -> None:
        self._group = group
        self._every = every_seconds
        self._last = 0.0

    def maybe_measure(self, consumer: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._every or not consumer.assignment():
            return
        self._last = now
        try:
            gauges.measure_lag(consumer, self._group)
        except Exception as exc:  # a metric must never stop consumption
            log.debug(
                "consumer.lag_unmeasured", extra={"consumer": self._group, "error": repr(exc)}
            )


def until_database_answers(stop: threading.Event, action: Callable[[], None], *, name: str) -> bool:
    """Run ``action`` (a database transaction) until the database takes it; False only when
    stopping first. A database outage is nobody's fault: wait for it, never skip the record."""
    attempts = 0
    while not stop.is_set():
        try:
            action()
            return True
        except OperationalError as exc:
            attempts += 1
            log.warning(
                "consumer.database_unavailable",
                extra={"consumer": name, "attempt": attempts, "error": repr(exc)},
            )
            stop.wait(min(0.25 * 2 ** min(attempts, 5), 5.0))
    return False


def consume_span(record: Any, *, group: str) -> Any:
    """A consumer span whose parent is the publish span named in the record's headers.

    ``group`` is the consumer's Kafka group id (``hub.kafka.client.consumer_group``). The
    record key (a person pseudonym) stays out of the span: traces leave the hub for the
    Collector and its backend.
    """
    return telemetry.span(
        f"process {record.topic}",
        kind=SpanKind.CONSUMER,
        parent=telemetry.extract(record.headers),
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": group,
        },
    )


def decode(record: Any) -> Event:
    """The CloudEvent in a Kafka record (binary mode); poison records raise."""
    attrs = from_headers(record.headers)
    if record.value is None:
        raise PermanentError("record has no value")
    data = json.loads(record.value.decode("utf-8"))
    if not isinstance(data, dict):
        raise PermanentError("event data is not a JSON object")
    return Event(attrs, data, record.topic, record.partition, record.offset)


def send_deadletter(
    producer: Any, topic: str, record: Any, *, reason: str, attempts: int, consumer: str
) -> None:
    """Copy a record to the dead-letter topic with error headers, and wait for the ack."""
    headers = [
        *(record.headers or []),
        ("dlq_reason", reason[:1000].encode()),
        ("dlq_original_topic", record.topic.encode()),
        ("dlq_original_partition", str(record.partition).encode()),
        ("dlq_original_offset", str(record.offset).encode()),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_consumer", consumer.encode()),
    ]
    producer.send(topic, key=record.key, value=record.value, headers=headers).get(timeout=30)
    telemetry.metrics().deadletters.add(1, {"consumer": consumer})
    log.error(
        "consumer.deadlettered",
        extra={
            "consumer": consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason[:200],
        },
    )


def commit_offsets(
    consumer: Any, offsets: dict[TopicPartition, int], *, consumer_name: str
) -> None:
    """Commit partitions' offsets in one request; a failed commit only means re-delivery."""
    try:
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
    except Exception as exc:
        # A rebalance took the partition away: its new owner re-reads, the inbox dedups.
        log.warning("consumer.commit_failed", extra={"consumer": consumer_name, "error": repr(exc)})
