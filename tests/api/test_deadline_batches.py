"""The deadline consumer applies a poll with a constant number of reads: the poll's
referrals, histories, keys and clock rows are read once (consumers/deadlines.prepare), and
each referral's clocks come out as they would one event at a time."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient
from kafka.structs import TopicPartition
from sqlalchemy import select

from consumers import deadlines
from consumers.runner import ConsumerRunner
from hub.bootstrap import Hub
from hub.db import utcnow
from hub.deadlines.models import ClockInstance
from hub.deadlines.service import clocks_of
from hub.outbox.models import OutboxEvent
from hub.referrals.models import Referral
from tests.api.test_hot_path import Statements
from tests.hubtest import STUDENT_REFERRAL, Partners
from tests.unit.test_consumer_batches import Producer, Record


def deadline_runner(hub: Hub) -> ConsumerRunner:
    return ConsumerRunner(
        name="deadlines",
        handler=deadlines.handle,
        prepare=deadlines.prepare,
        topics=lambda: [hub.settings.topic_events],
        session_factory=hub.session_factory,
        settings=hub.settings,
        catalogue=hub.catalogue,
        policy=hub.policy,
        consumer_factory=lambda topics, listener: None,
        producer_factory=Producer,
    )


def polled(hub: Hub) -> dict[TopicPartition, list[Any]]:
    """The events topic's outbox rows, as one partition's poll."""
    with hub.session_factory() as session:
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.topic == hub.settings.topic_events)
            .order_by(OutboxEvent.id)
        ).all()
        records = [
            Record(
                r.topic,
                0,
                offset,
                r.key.encode() if r.key else None,
                r.value.encode(),
                [(k, v.encode()) for k, v in r.headers],
            )
            for offset, r in enumerate(rows)
        ]
    return {TopicPartition(hub.settings.topic_events, 0): records}


def clocks(hub: Hub) -> dict[tuple[str, str], tuple[str, Any, Any]]:
    with hub.session_factory() as session:
        return {
            (c.referral_id, c.name): (c.state, c.started_at, c.due_at)
            for c in session.scalars(select(ClockInstance))
        }


def test_a_poll_reads_once_and_gives_each_referral_its_clocks(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    ids = []
    for n in range(4):
        body = {**STUDENT_REFERRAL, "person": {**STUDENT_REFERRAL["person"]}}
        body["person"]["partner_reference"] = f"DL-{n}"
        r = client.post("/v1/referrals", json=body, headers=ude)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    for rid in ids[:2]:  # two referrals have a second event in the same poll
        change = {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"}
        r = client.post(f"/v1/referrals/{rid}/status", json=change, headers=amt)
        assert r.status_code == 200, r.text
    poll = polled(hub)
    [records] = poll.values()
    assert len(records) >= 6

    with Statements(hub) as counted:
        done = deadline_runner(hub)._apply_poll(poll, threading.Event())
    assert done == {tp: len(recs) for tp, recs in poll.items()}
    reads = [s for s in counted.sent if s.startswith("SELECT")]
    # The inbox, the referrals, their histories, the people's keys, the clock rows: once each
    # for the poll, however many events it holds (one at a time: four or five per event).
    assert len(reads) <= 5, "\n".join(s[:150] for s in reads)

    stored = clocks(hub)
    with hub.session_factory() as session:
        now = utcnow()
        for rid in ids:
            referral = session.get(Referral, rid)
            assert referral is not None
            expected = clocks_of(
                session, referral, catalogue=hub.catalogue, settings=hub.settings, now=now
            )
            assert expected, "a student referral runs a clock"
            for state in expected:
                assert stored[(rid, state.name)] == (state.state, state.started_at, state.due_at)
    assert {rid for rid, _name in stored} == set(ids)

    # The same poll again (a redelivery): the inbox turns it into nothing.
    with Statements(hub) as again:
        deadline_runner(hub)._apply_poll(poll, threading.Event())
    assert clocks(hub) == stored
    assert not [s for s in again.sent if s.startswith(("INSERT INTO clock", "UPDATE clock"))]
