"""The hub's gauges: values read from the database or the consumers when metrics are collected."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hub import telemetry
from hub.audit.models import AuditRecord
from hub.db import utcnow
from hub.deadlines.service import overdue_counts
from hub.deliveries.models import DeliveryState
from hub.outbox.models import OutboxEvent
from hub.outbox.settlement import oldest_unsettled

Reading = Iterable[tuple[float, dict[str, str]]]

_lag_lock = threading.Lock()
#: (consumer group, topic, partition) -> records not yet consumed, as last measured.
_lag: dict[tuple[str, str, int], int] = {}


def register(session_factory: sessionmaker[Session]) -> None:
    """Register the gauges of this process (once, after ``telemetry.configure``)."""

    def outbox() -> tuple[float, float]:
        with session_factory() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.published_at.is_(None)
                )
            ).one()
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return float(count), age

    def unsettled() -> Reading:
        # Published but not yet applied by every consumer: what a forgetful broker's restart
        # would make the relay send again. Growing means a consumer group is not running.
        with session_factory() as session:
            oldest = oldest_unsettled(session)
        return [((utcnow() - oldest).total_seconds() if oldest is not None else 0.0, {})]

    def unsequenced() -> Reading:
        # Records not yet under a signed checkpoint: growing means no sequencer is running.
        with session_factory() as session:
            oldest = session.scalar(
                select(func.min(AuditRecord.at)).where(AuditRecord.leaf_index.is_(None))
            )
        return [((utcnow() - oldest).total_seconds() if oldest is not None else 0.0, {})]

    def paused() -> Reading:
        with session_factory() as session:
            count = session.scalar(
                select(func.count()).select_from(DeliveryState).where(DeliveryState.paused)
            )
        return [(float(count or 0), {})]

    def overdue() -> Reading:
        with session_factory() as session:
            counts = overdue_counts(session, now=utcnow())
        return [(float(n), {"partner": p, "type": t}) for p, t, n in counts]

    telemetry.observe(
        "hub.outbox.backlog",
        unit="{event}",
        description="Outbox rows not yet published.",
        read=lambda: [(outbox()[0], {})],
    )
    telemetry.observe(
        "hub.outbox.oldest_age",
        unit="s",
        description="Age of the oldest unpublished outbox row.",
        read=lambda: [(outbox()[1], {})],
    )
    telemetry.observe(
        "hub.outbox.unsettled_age",
        unit="s",
        description="Age of the oldest published outbox row not yet applied by every consumer.",
        read=unsettled,
    )
    telemetry.observe(
        "hub.audit.unsequenced_age",
        unit="s",
        description="Age of the oldest audit record not yet under a signed checkpoint.",
        read=unsequenced,
    )
    telemetry.observe(
        "hub.partners.paused",
        unit="{partner}",
        description="Partners whose delivery is paused.",
        read=paused,
    )
    telemetry.observe(
        "hub.referrals.overdue",
        unit="{clock}",
        description="Overdue deadline clocks.",
        read=overdue,
    )
    telemetry.observe(
        "hub.consumer.lag",
        unit="{record}",
        description="Records not yet consumed, per partition.",
        read=_lag_readings,
    )


def measure_lag(consumer: Any, group: str) -> None:
    """Record the lag of every partition assigned to this consumer (end offset - position)."""
    partitions = list(consumer.assignment())
    if not partitions:
        return
    ends = consumer.end_offsets(partitions)
    readings = {}
    for tp in partitions:
        position = consumer.position(tp)
        if position is not None and tp in ends:
            readings[(group, tp.topic, tp.partition)] = max(int(ends[tp]) - int(position), 0)
    with _lag_lock:
        for key in [k for k in _lag if k[0] == group]:
            del _lag[key]
        _lag.update(readings)


def _lag_readings() -> Reading:
    with _lag_lock:
        items = list(_lag.items())
    return [
        (float(lag), {"group": group, "topic": topic, "partition": str(partition)})
        for (group, topic, partition), lag in items
    ]
