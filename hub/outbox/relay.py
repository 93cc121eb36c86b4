"""The relay: moves committed outbox rows to Kafka, in order, and marks them published.

Rules that keep "nothing lost, nothing twice" (design §13):
- a row is marked published only after the broker acknowledged it (``acks=all``);
- while the broker does not answer, the relay keeps waiting on the *same* idempotent
  producer: its retries carry the same producer id and sequence numbers, so the broker
  drops a request it already has (a paused broker still holds requests in its socket
  buffers, and a fresh producer re-sending them would write them twice);
- when every broker refuses connections, no broker process is left to hold those requests:
  the producer is replaced at once, before a restarted broker can meet its stale producer id
  and sequence numbers (an in-memory broker forgets them, and a reset sequence can then be
  taken for a duplicate and acknowledged without being written); the unmarked rows are
  re-sent by a fresh producer, and a restarted Kafka broker that had already written some of
  them before dying yields repeats that consumers drop. The relay looks for that also while
  it is idle (every ``GONE_CHECK_SECONDS``), so that a broker which dies and comes back
  between two batches does not meet the old producer either;
- when the broker answers again but the producer is stuck or failed, it is replaced too;
- if a send fails, only rows before the first failure are marked, so a person's events are
  re-sent in order; consumers drop any repeat by event id;
- an acknowledged row is not done until its consumers applied it (hub.outbox.settlement):
  before every batch the relay asks which broker it is talking to, and on meeting a new one
  (one that forgot its log) it queues every unsettled row again before sending anything
  else; between batches it settles the rows its consumers have applied.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from hub import telemetry
from hub.db import table_of, unit_of_work, utcnow
from hub.kafka.client import BrokerState
from hub.outbox.models import OutboxEvent
from hub.outbox.settlement import Settler, meet_broker

log = logging.getLogger(__name__)

FLUSH_WAIT_SECONDS = 0.5
#: While idle with a producer, how often the relay checks that a broker still listens.
GONE_CHECK_SECONDS = 1.0
#: How long an answering broker may leave a send unacknowledged before the producer is
#: considered broken (after a broker restart it would otherwise wait for ever).
STUCK_PRODUCER_SECONDS = 15.0
#: How often the relay settles rows whose consumers have applied them.
SETTLE_SECONDS = 1.0


class BrokerGone(RuntimeError):
    """Every broker refused the connection while sends were unacknowledged."""


class Relay:
    """Publishes outbox rows; one instance per process, run in its own thread."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        producer_factory: Callable[[], Any],
        ensure_topics: Callable[[set[str]], None],
        broker_state: Callable[[], BrokerState],
        batch_size: int,
        poll_interval: float,
        wakeup: threading.Event | None = None,
        broker_epoch: Callable[[], str] | None = None,
        settler: Settler | None = None,
        all_topics: Callable[[], set[str]] | None = None,
        linger: float = 0.0,
    ) -> None:
        self._sessions = session_factory
        #: Every topic the hub uses, created on meeting a broker (whose metadata requests from
        #: the consumers would otherwise find them missing until the relay sends to each).
        self._all_topics = all_topics
        self._producer_factory = producer_factory
        self._ensure_topics = ensure_topics
        self._broker_state = broker_state
        self._stop = threading.Event()
        self._known_topics: set[str] = set()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self.wakeup = wakeup or threading.Event()
        self._producer: Any = None
        self._broker_epoch = broker_epoch
        self._epoch: str | None = None
        self._settler = settler
        self._settled_at = 0.0
        #: Under load, the least time from one batch's start to the next
        #: (``_linger_after_wakeup``).
        self._linger = linger
        self._batch_started = 0.0
        # Built once: constructing a statement for every batch cost more than running it.
        self._claim_plain = _PENDING.limit(batch_size)
        self._claim_locked = self._claim_plain.with_for_update(skip_locked=True)

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set; back off while Kafka is unreachable."""
        self._stop = stop
        backoff = 0.0
        while not stop.is_set():
            try:
                self._batch_started = time.monotonic()
                published = self.publish_batch()
                backoff = 0.0
            except Exception as exc:
                self._drop_producer()
                self._known_topics.clear()  # a restarted broker may have lost them
                backoff = min(max(backoff * 2, 0.5), 10.0)
                log.warning("relay.publish_failed", extra={"error": repr(exc), "retry_in": backoff})
                stop.wait(backoff)
                continue
            self._settle()
            if published < self._batch_size:
                self._idle(stop)
        self._drop_producer()
        close = getattr(self._broker_epoch, "close", None)
        if close is not None:
            close()

    def _idle(self, stop: threading.Event) -> None:
        """Wait for a commit signal or the poll interval, whichever is first; stop promptly."""
        deadline = time.monotonic() + self._poll_interval
        checked = time.monotonic()
        while not stop.is_set() and not self.wakeup.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.wakeup.wait(min(remaining, 0.5))
            if self._producer is not None and time.monotonic() - checked >= GONE_CHECK_SECONDS:
                checked = time.monotonic()
                self._drop_producer_if_broker_gone()
            self._settle()
        self._linger_after_wakeup(stop)
        self.wakeup.clear()

    def _linger_after_wakeup(self, stop: threading.Event) -> None:
        """Woken soon after the last batch began: let a few more commits join the next one.

        A batch costs about the same for one row as for ten (a transaction, a produce
        request, its acknowledgement); commits arriving faster than batches go out would
        otherwise each pay for one. A commit after a quiet spell is sent at once."""
        if self._linger <= 0 or not self.wakeup.is_set():
            return
        gap = self._batch_started + self._linger - time.monotonic()
        if gap > 0:
            stop.wait(gap)

    def _settle(self) -> None:
        """Settle what the consumers applied, at most every ``SETTLE_SECONDS``."""
        if self._settler is None or time.monotonic() - self._settled_at < SETTLE_SECONDS:
            return
        self._settled_at = time.monotonic()
        try:
            self._settler.settle()
        except Exception as exc:  # the database is away: publishing waits for it anyway
            log.warning("relay.settle_failed", extra={"error": repr(exc)})

    def check_broker(self) -> None:
        """Before sending: on meeting a broker new to the database, queue the unsettled rows
        again and start with a fresh producer (the new broker knows none of the old ids)."""
        if self._broker_epoch is None:
            return
        epoch = self._broker_epoch()
        if epoch == self._epoch:
            return
        with unit_of_work(self._sessions) as session:
            again = meet_broker(session, epoch)
        if self._epoch is not None or again:
            self._drop_producer()
            self._known_topics.clear()
        if self._all_topics is not None:
            self._ensure(self._all_topics())
        self._epoch = epoch

    def _drop_producer_if_broker_gone(self) -> None:
        if self._broker_state() == "gone":
            log.warning("relay.broker_gone", extra={"while": "idle"})
            self._drop_producer()
            self._known_topics.clear()  # a restarted broker may have lost them

    def publish_batch(self) -> int:
        """Send one batch of unpublished rows; return how many there were."""
        self.check_broker()
        if self._holds_locks():
            # PostgreSQL: row locks (SKIP LOCKED) let several relays share the outbox; they
            # block no inserts, so holding them while Kafka answers is harmless.
            with unit_of_work(self._sessions) as session:
                rows = self._claim(session, lock=True)
                sent = self._send(rows)
                _mark(session, sent)
        else:
            # SQLite has a single writer lock: never hold it while waiting for the broker.
            with unit_of_work(self._sessions) as session:
                rows = self._claim(session, lock=False)
            sent = self._send(rows)
            if sent:
                with unit_of_work(self._sessions) as session:
                    _mark(session, sent)
        # Counted once marked: a scrape never shows a row both published and still owed.
        telemetry.metrics().events_published.add(len(sent))
        if len(sent) < len(rows):
            raise RuntimeError(f"published {len(sent)} of {len(rows)} outbox rows")
        return len(rows)

    def _holds_locks(self) -> bool:
        bind = self._sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"

    def _claim(self, session: Session, *, lock: bool) -> list[Pending]:
        # Plain rows, not ORM objects: nothing reads them back, the mark is a Core update.
        return list(session.execute(self._claim_locked if lock else self._claim_plain))

    def _ensure(self, topics: set[str]) -> None:
        missing = topics - self._known_topics
        if missing:
            self._ensure_topics(missing)
            self._known_topics |= missing

    def _send(self, rows: list[Pending]) -> list[Pending]:
        if not rows:
            return []
        self._ensure({row.topic for row in rows})
        if self._producer is None:
            self._producer = self._producer_factory()
        spans = [_publish_span(row) for row in rows]
        try:
            futures = [self._send_one(row, span) for row, span in zip(rows, spans, strict=True)]
            self._wait_for_acks(futures)
            sent: list[Pending] = []
            for row, future, span in zip(rows, futures, spans, strict=True):
                try:
                    metadata = future.get(timeout=0)
                except Exception as exc:
                    log.warning(
                        "relay.send_failed", extra={"event_id": row.event_id, "error": repr(exc)}
                    )
                    break
                span.set_attribute("messaging.destination.partition.id", str(metadata.partition))
                span.set_attribute("messaging.kafka.offset", metadata.offset)
                sent.append(row)
        finally:
            for span in spans:
                span.end()
        return sent

    def _send_one(self, row: Pending, span: Span) -> Any:
        """Send one row; its record carries the publish span's trace context."""
        headers = [(name, value.encode()) for name, value in row.headers]
        with trace.use_span(span, end_on_exit=False):
            headers = telemetry.with_context(headers)
        return self._producer.send(
            row.topic,
            key=row.key.encode() if row.key else None,
            value=row.value.encode(),
            headers=headers,
        )

    def _wait_for_acks(self, futures: list[Any]) -> None:
        answering_since: float | None = None
        while not all(f.is_done for f in futures):
            if self._stop.is_set():
                raise RuntimeError("stopping with unacknowledged sends")
            try:
                self._producer.flush(timeout=FLUSH_WAIT_SECONDS)
                continue
            except Exception as exc:
                log.info("relay.waiting_for_broker", extra={"error": repr(exc)})
            state = self._broker_state()
            if state == "gone":
                raise BrokerGone("no broker is listening; replacing the producer")
            if state == "silent":
                answering_since = None
                continue
            answering_since = answering_since or time.monotonic()
            if time.monotonic() - answering_since > STUCK_PRODUCER_SECONDS:
                raise RuntimeError("broker answers but the producer is stuck; replacing it")

    def _drop_producer(self) -> None:
        if self._producer is not None:
            # A broken producer may fail to close; it is being discarded anyway.
            with contextlib.suppress(Exception):
                self._producer.close(timeout=1)
            self._producer = None


def _publish_span(row: Pending) -> Span:
    """A producer span continuing the trace of the request that wrote the row.

    "send" (one record per call, as kafka-python's ``send``), per the messaging conventions.
    No ``messaging.kafka.message.key``: the key is the person pseudonym, and traces leave the
    hub for the Collector and its backend.
    """
    return telemetry.tracer().start_span(
        f"send {row.topic}",
        context=telemetry.extract([(n, v) for n, v in row.headers]),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            "messaging.destination.name": row.topic,
            "messaging.message.id": row.event_id,
        },
    )


def _mark(session: Session, rows: list[Pending]) -> None:
    # A Core update: the ORM's would also look for the rows among the session's objects and
    # set the time on each, and nothing reads them again.
    if rows:
        session.execute(_MARK, {"ids": [r.id for r in rows], "now": utcnow()})


_OUTBOX = table_of(OutboxEvent)
#: Rows published now; built once, the ids an expanding parameter.
_MARK = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("now", type_=_OUTBOX.c.published_at.type))
)
#: What the relay sends of each unpublished row, in outbox order.
_PENDING = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.event_id,
        _OUTBOX.c.topic,
        _OUTBOX.c.key,
        _OUTBOX.c.headers,
        _OUTBOX.c.value,
    )
    .where(_OUTBOX.c.published_at.is_(None))
    .order_by(_OUTBOX.c.id)
)
#: An unpublished row as the relay reads it (``id``, ``event_id``, ``topic``, ``key``,
#: ``headers``, ``value``).
Pending = Row[Any]
