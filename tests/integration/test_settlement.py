"""An outbox row is done when its consumers applied it, not when the broker acknowledged it:
a broker that forgets (the embedded one, restarted) gets again everything still unsettled."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from consumers.registry import NAMES
from hub.db import unit_of_work
from hub.events.service import mark_processed
from hub.inbox.models import InboxMessage
from hub.kafka.embedded import EmbeddedBroker
from hub.outbox.models import BrokerEpoch, OutboxEvent
from hub.outbox.settlement import (
    EVENT_CONSUMERS,
    INBOX_CONSUMER,
    OWED_FIRST_SECONDS,
    Settler,
)
from hub.runtime import build_relay
from hub.timeline.models import TimelineEntry
from tests.integration.conftest import Running, wait_for
from tests.integration.test_faults import _accept
from tests.integration.test_referral_flow import read_topic

pytestmark = pytest.mark.integration

EVENTS = "hub.events.v1"


def ids_on(running: Running, topic: str, expect: int) -> list[str]:
    records = read_topic(running.hub.bootstrap_servers, topic, expect, timeout=10)
    return [dict(r.headers)["ce_id"].decode() for r in records]


def scalar(running: Running, query: Any) -> Any:
    with running.hub.session_factory() as session:
        return session.scalar(query)


def unsettled(running: Running) -> int:
    return int(
        scalar(
            running,
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.settled_at.is_(None)),
        )
        or 0
    )


def test_the_groups_that_settle_an_event_are_the_consumers_that_read_the_events_topic() -> None:
    assert set(NAMES) - {INBOX_CONSUMER} == set(EVENT_CONSUMERS)
    assert INBOX_CONSUMER in NAMES


def test_only_unsettled_rows_go_again_and_only_to_a_broker_new_to_the_hub(
    running: Running, broker: EmbeddedBroker
) -> None:
    accepted = _accept(running, 6, 0)
    relay = build_relay(running.hub)
    relay.publish_batch()
    assert sorted(ids_on(running, EVENTS, 6)) == sorted(accepted)
    with running.hub.session_factory() as session:
        first_epoch = session.scalars(select(BrokerEpoch.epoch)).one()

    # Every consumer applied two of them; a third was applied by only two of its three.
    done, partly = sorted(accepted)[:2], sorted(accepted)[2]
    with unit_of_work(running.hub.session_factory) as session:
        for event_id in done:
            for consumer in EVENT_CONSUMERS:
                mark_processed(session, consumer=consumer, event_id=event_id)
        for consumer in EVENT_CONSUMERS[:2]:
            mark_processed(session, consumer=consumer, event_id=partly)
    assert Settler(running.hub.session_factory, running.hub.settings).settle() == 2
    settled = set(
        scalar_all(running, select(OutboxEvent.event_id).where(OutboxEvent.settled_at.is_not(None)))
    )
    assert settled == set(done)

    # A relay started again (a restarted process) meets the same broker: nothing goes again.
    again = build_relay(running.hub)
    assert again.publish_batch() == 0
    assert sorted(ids_on(running, EVENTS, 6)) == sorted(accepted)

    # The broker restarts and forgets: the unsettled four go again (in outbox order, so in
    # order per key), and only they, with the performer's copies staged at acceptance (no
    # inbox has applied one yet).
    broker.restart()
    assert again.publish_batch() == 4 + len(accepted)
    owed = [i for i in ordered_ids(running) if i not in done]
    assert sorted(ids_on(running, EVENTS, 4)) == sorted(owed)
    with running.hub.session_factory() as session:
        assert session.scalars(select(BrokerEpoch.epoch)).one() != first_epoch


def scalar_all(running: Running, query: Any) -> list[Any]:
    with running.hub.session_factory() as session:
        return list(session.scalars(query))


def ordered_ids(running: Running) -> list[str]:
    return scalar_all(
        running,
        select(OutboxEvent.event_id).where(OutboxEvent.topic == EVENTS).order_by(OutboxEvent.id),
    )


def test_events_published_but_not_consumed_survive_a_broker_restart(
    running: Running, broker: EmbeddedBroker
) -> None:
    """The router and the inbox were down when the broker died: the acknowledged events were
    only in the broker's memory. Each still reaches the performer's inbox, exactly once."""
    running.start_relay()
    accepted = _accept(running, 25, 0)
    wait_for(lambda: set(ids_on(running, EVENTS, len(accepted))) >= accepted, timeout=30)
    assert unsettled(running) == 2 * len(accepted)  # each event and the performer's copy

    broker.kill()
    time.sleep(1.5)  # the relay sees the broker gone, as after a crash
    broker.start()
    for name in NAMES:
        running.start_consumer_thread(name)

    def inbox() -> int:
        """every referral reached the performer's inbox"""
        return int(
            scalar(
                running,
                select(func.count())
                .select_from(InboxMessage)
                .where(InboxMessage.partner_id == "amt"),
            )
            or 0
        )

    wait_for(lambda: inbox() >= len(accepted), timeout=90)
    wait_for(lambda: unsettled(running) == 0, timeout=30)
    time.sleep(1.5)  # a repeat applied twice would show now
    assert inbox() == len(accepted)
    distinct = scalar(
        running,
        select(func.count(func.distinct(InboxMessage.event_id))).where(
            InboxMessage.partner_id == "amt"
        ),
    )
    assert distinct == len(accepted)
    entries = scalar(
        running,
        select(func.count(func.distinct(TimelineEntry.event_id))).where(
            TimelineEntry.event_id.in_(accepted)
        ),
    )
    assert entries == len(accepted)


def test_a_row_waiting_for_its_consumers_is_judged_once_and_still_settles(
    running: Running,
) -> None:
    from sqlalchemy import event

    accepted = sorted(_accept(running, 3, 0))
    build_relay(running.hub).publish_batch()
    reads: list[str] = []

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "outbox.headers" in statement:
            reads.append(statement)

    now = [0.0]
    settler = Settler(running.hub.session_factory, running.hub.settings, clock=lambda: now[0])
    event.listen(running.hub.engine, "before_cursor_execute", count)
    try:
        assert settler.settle() == 0  # no consumer applied anything yet
        now[0] += OWED_FIRST_SECONDS
        assert settler.settle() == 0
        assert len(reads) == 1, "the waiting rows' headers are read on the first pass only"
        with unit_of_work(running.hub.session_factory) as session:
            for consumer in EVENT_CONSUMERS:
                mark_processed(session, consumer=consumer, event_id=accepted[0])
        now[0] += 2 * OWED_FIRST_SECONDS
        assert settler.settle() == 1
        assert len(reads) == 1
    finally:
        event.remove(running.hub.engine, "before_cursor_execute", count)
    assert scalar_all(
        running, select(OutboxEvent.event_id).where(OutboxEvent.settled_at.is_not(None))
    ) == [accepted[0]]
