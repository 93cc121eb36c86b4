"""Dead letters: listing what the consumers could not apply or partners rejected, and
replaying it after the cause was fixed.

A replay is checked again (the partner is still registered and active, and the route is
still allowed by the catalogue) and goes back through the outbox to the original topic
under its original event id, so it is delivered at most once more: if it was meanwhile
delivered, the delivery consumer skips it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.errors import Conflict, NotFound
from hub.kafka.client import creating_topics
from hub.kafka.security import KafkaSecurity
from hub.outbox.models import OutboxEvent
from hub.outbox.service import OutboxRow, add_row, visible
from hub.partners.models import Partner
from hub.settings import Settings
from schemas.catalogue import Catalogue
from schemas.cloudevents import EventType

READ_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DeadLetter:
    id: str
    event_id: str | None
    event_type: str | None
    original_topic: str
    recipient: str | None
    reason: str
    consumer: str
    headers: list[tuple[str, bytes]]
    key: bytes | None
    value: bytes | None

    def summary(self) -> dict[str, Any]:
        """What staff and operators see in a list."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "original_topic": self.original_topic,
            "recipient": self.recipient,
            "reason": self.reason,
            "consumer": self.consumer,
        }


def read_all(
    bootstrap: str, settings: Settings, *, security: KafkaSecurity | None = None
) -> list[DeadLetter]:
    """Every record in the dead-letter topic, oldest first per partition."""
    security = security or KafkaSecurity.from_settings(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        client_id=f"{settings.kafka_client_id}.deadletters",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        allow_auto_create_topics=False,
        **security.client_options(),
    )
    # Reading must not create the topic, with the broker's partition count, where there is none.
    creating_topics(consumer, allowed=False)
    try:
        parts = consumer.partitions_for_topic(settings.topic_deadletter) or set()
        tps = [TopicPartition(settings.topic_deadletter, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + READ_TIMEOUT_SECONDS
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return [_parse(r, settings) for r in records]
    finally:
        consumer.close()


def _parse(record: Any, settings: Settings) -> DeadLetter:
    headers = [(k, v) for k, v in (record.headers or [])]
    h = {k: v.decode(errors="replace") for k, v in headers}
    topic = h.get("dlq_original_topic", "")
    recipient = h.get("ce_recipient")
    prefix, suffix = settings.topic_deliveries_prefix, settings.topic_deliveries_suffix
    if recipient is None and topic.startswith(prefix) and topic.endswith(suffix):
        recipient = topic[len(prefix) : -len(suffix)]
    return DeadLetter(
        id=f"{record.partition}:{record.offset}",
        event_id=h.get("ce_id"),
        event_type=h.get("ce_type"),
        original_topic=topic,
        recipient=recipient,
        reason=h.get("dlq_reason", ""),
        consumer=h.get("dlq_consumer", ""),
        headers=[(k, v) for k, v in headers if not k.startswith("dlq_")],
        key=record.key,
        value=record.value,
    )


def replay(session: Session, *, letter: DeadLetter, catalogue: Catalogue) -> OutboxRow:
    """Re-publish one dead letter to its original topic, after checking it again."""
    if letter.recipient is not None:
        _check_route(session, letter, catalogue)
    if letter.value is None or not letter.original_topic:
        raise Conflict(f"dead letter {letter.id} has nothing to replay")
    event_id = letter.event_id or f"dlq-{letter.id}"
    visible(session)
    previous = session.scalar(
        select(func.max(OutboxEvent.replay)).where(
            OutboxEvent.topic == letter.original_topic, OutboxEvent.event_id == event_id
        )
    )
    replay_no = (previous if previous is not None else 0) + 1
    headers = [[k, v.decode(errors="replace")] for k, v in letter.headers if k != "ce_replay"] + [
        ["ce_replay", str(replay_no)]
    ]
    row = OutboxRow(
        event_id=event_id,
        topic=letter.original_topic,
        key=letter.key.decode() if letter.key else None,
        headers=headers,
        value=letter.value.decode(errors="replace"),
        replay=replay_no,
    )
    return add_row(session, row)


def _check_route(session: Session, letter: DeadLetter, catalogue: Catalogue) -> None:
    partner = session.get(Partner, letter.recipient)
    if partner is None or not partner.active:
        raise Conflict(f"partner {letter.recipient!r} is no longer registered; not replayed")
    if letter.event_type != EventType.REFERRAL_REQUESTED or letter.value is None:
        return
    data = json.loads(letter.value)
    rtype = catalogue.get(str(data.get("referral_type")))
    if rtype is None or partner.kind not in rtype.performer:
        raise Conflict(
            f"route to {partner.id!r} for {data.get('referral_type')!r} is no "
            "longer allowed; not replayed"
        )


def find(letters: list[DeadLetter], letter_id: str) -> DeadLetter:
    """The dead letter with that id."""
    for letter in letters:
        if letter.id == letter_id:
            return letter
    raise NotFound(f"no dead letter {letter_id}")
