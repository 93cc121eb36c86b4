"""Push delivery: one consumer per push-mode partner, posting routed events to its endpoint.

Unlike the generic runner, a failure here is usually the partner's, not the record's:
- transient (down, slow, 5xx, 429): the same record is retried with backoff for as long as
  it takes; the partner shows as paused; nothing is dead-lettered, nothing is skipped, and
  since every partner has its own consumer, the others keep flowing;
- permanent (a 4xx rejection of this message, or a payload the connector cannot map): the
  record goes to the dead-letter topic and a ``delivery-failed`` event reaches the timeline;
- delivered: recorded with the event id in the same transaction as ``referral.delivered``,
  so a repeat (re-delivery after a crash, a second replay) is skipped; the partner also
  receives the event id as ``Idempotency-Key``.
The HTTP call is made outside any database transaction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connectors.base import ConnectorKind, Deliverer, MappingError, OutboundMessage
from consumers.runner import (
    POISON,
    Event,
    LagMeter,
    commit_offset,
    consume_span,
    decode,
    send_deadletter,
    until_database_answers,
)
from hub import telemetry
from hub.db import unit_of_work
from hub.deliveries import service
from hub.kafka.rejoins import StalledJoinWatch
from hub.kafka.resets import PartitionResetGuard
from hub.privacy.crypto import ERASED
from hub.privacy.service import open_event
from hub.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class DeliveryRunner:
    """Delivers one partner's routed events, in order, to its endpoint."""

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
    ) -> None:
        self.partner_id = partner_id
        self.name = service.consumer_name(partner_id)
        self._connector = connector
        self._deliverer = deliverer
        self._sessions = session_factory
        self._settings = settings
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._initial_backoff = initial_backoff

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; offsets are committed after each record's outcome."""
        topics = [self._settings.deliveries_topic(self.partner_id)]
        resets = PartitionResetGuard(self.name)
        stalls = StalledJoinWatch(self.name)
        consumer = self._consumer_factory(topics, resets)
        log.info("delivery.started", extra={"partner": self.partner_id})
        try:
            lag = LagMeter(self.name)
            while not stop.is_set():
                for tp, records in consumer.poll(timeout_ms=500).items():
                    for record in records:
                        if not self._handle(record, stop):
                            break
                        commit_offset(consumer, tp, record.offset + 1, consumer_name=self.name)
                resets.check(consumer)
                stalls.check(consumer)
                lag.maybe_measure(consumer)
        finally:
            consumer.close(autocommit=False)
            self._deliverer.close()
            if self._producer is not None:
                self._producer.close(timeout=5)
            log.info("delivery.stopped", extra={"partner": self.partner_id})

    def _handle(self, record: Any, stop: threading.Event) -> bool:
        """Settle one record, in a consumer span continuing the producer's trace."""
        with consume_span(record, group=self.name):
            return self._handle_traced(record, stop)

    def _handle_traced(self, record: Any, stop: threading.Event) -> bool:
        """Settle one record; False only when stopping before it was settled."""
        try:
            event = decode(record)
        except POISON as exc:
            self._deadletter(record, repr(exc))
            return True
        prepared: list[OutboundMessage | None] = []

        def prepare() -> None:  # reads only: repeating it after a database outage is safe
            prepared.clear()
            with self._sessions() as session:
                done = service.already_delivered(
                    session, partner_id=self.partner_id, event_id=event.attrs.id
                )
            prepared.append(None if done else self._message(event))

        try:
            if not until_database_answers(stop, prepare, name=self.name):
                return False
        except MappingError as exc:
            return self._reject(record, event, f"connector cannot map the event: {exc}", None, stop)
        message = prepared[0]
        if message is None:
            return True
        return self._deliver(record, event, message, stop)

    def _deliver(
        self, record: Any, event: Event, message: OutboundMessage, stop: threading.Event
    ) -> bool:
        backoff = self._initial_backoff
        while not stop.is_set():
            result = self._deliverer.deliver(message)
            if result.outcome == "delivered":
                _observe_latency(self.partner_id, event)

                def delivered() -> None:
                    with unit_of_work(self._sessions) as session:
                        service.record_delivered(
                            session,
                            partner_id=self.partner_id,
                            attrs=event.attrs,
                            data=event.data,
                            settings=self._settings,
                        )

                # The partner has it: wait out a database outage rather than deliver again.
                return until_database_answers(stop, delivered, name=self.name)
            if result.outcome == "permanent":
                return self._reject(record, event, result.reason, result.status_code, stop)
            log.warning(
                "delivery.partner_unavailable",
                extra={
                    "partner": self.partner_id,
                    "reason": result.reason,
                    "retry_in": result.retry_after or backoff,
                },
            )
            telemetry.metrics().delivery_retries.add(1, {"partner": self.partner_id})

            def unavailable(reason: str = result.reason) -> None:
                with unit_of_work(self._sessions) as session:
                    service.record_unavailable(session, partner_id=self.partner_id, reason=reason)

            if not until_database_answers(stop, unavailable, name=self.name):
                return False
            stop.wait(min(result.retry_after or backoff, MAX_BACKOFF_SECONDS))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        return False

    def _message(self, event: Event) -> OutboundMessage:
        with self._sessions() as session:
            data = open_event(session, str(event.data.get("person_id")), event.data)
            session.commit()
        if ERASED in json.dumps(data, ensure_ascii=False):
            raise MappingError("person", "the person's data was erased")
        native = self._connector.outbound.to_native(event.attrs.type, data)
        return OutboundMessage(
            event_id=event.attrs.id,
            event_type=event.attrs.type,
            referral_id=event.attrs.subject,
            body=json.dumps(native).encode(),
        )

    def _reject(
        self,
        record: Any,
        event: Event,
        reason: str,
        status_code: int | None,
        stop: threading.Event,
    ) -> bool:
        """Dead-letter the record and record the rejection; False only when stopping first."""
        self._deadletter(record, reason)

        def rejected() -> None:
            with unit_of_work(self._sessions) as session:
                service.record_rejected(
                    session,
                    partner_id=self.partner_id,
                    attrs=event.attrs,
                    data=event.data,
                    reason=reason,
                    status_code=status_code,
                    settings=self._settings,
                )

        return until_database_answers(stop, rejected, name=self.name)

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
