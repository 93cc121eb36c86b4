"""Nothing accepted is lost and nothing is applied twice when a consumer or the broker dies."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from hub.events.models import ProcessedEvent
from hub.kafka.client import probe
from hub.kafka.embedded import EmbeddedBroker
from hub.outbox.models import OutboxEvent
from hub.runtime import topic_plan
from hub.timeline.models import TimelineEntry
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.test_embedded_broker import partition_counts
from tests.integration.test_referral_flow import read_topic

pytestmark = pytest.mark.integration


def referral(i: int) -> dict[str, Any]:
    person = {**STUDENT_REFERRAL["person"], "partner_reference": f"ES{i:09d}"}
    return {**STUDENT_REFERRAL, "person": person}


def count(running: Running, query: Any) -> int:
    with running.hub.session_factory() as s:
        return int(s.scalar(query) or 0)


def timeline_rows(running: Running) -> int:
    return count(running, select(func.count()).select_from(TimelineEntry))


def _request_many(running: Running, total: int) -> None:
    """Accept ``total`` referrals through the service layer (the HTTP path is tested elsewhere)."""
    from hub.db import unit_of_work
    from hub.partners.models import Partner
    from hub.referrals.service import request_referral
    from schemas.messages import ReferralCreate

    hub = running.hub
    with unit_of_work(hub.session_factory) as session:
        ude = session.get(Partner, "ude")
        assert ude is not None
        for i in range(total):
            request_referral(
                session,
                body=ReferralCreate.model_validate(referral(i)),
                by=ude,
                catalogue=hub.catalogue,
                policy=hub.policy,
                settings=hub.settings,
            )


def _run_in_slices(
    proc: subprocess.Popen[bytes], done: Callable[[], bool], *, timeout: float = 60.0
) -> None:
    """Let ``proc`` run a few milliseconds at a time, stopped in between, until ``done()``.

    ``done`` is asked only while the process is stopped, and the process is left stopped, so
    what it saw still holds when the caller kills it: however late this process is scheduled,
    the consumer cannot run on to the end of the stream between a look and the kill."""
    deadline = time.monotonic() + timeout
    while True:
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.003)
        proc.send_signal(signal.SIGSTOP)
        if done():
            return
        assert proc.poll() is None, f"the consumer exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"


@pytest.mark.hub_settings(kafka_max_poll_records=5)
def test_killed_consumer_loses_nothing_and_applies_nothing_twice(running: Running) -> None:
    # A consumer commits a whole poll (here up to 5 records) at once, and its Kafka offsets
    # after that. It runs in slices of a few milliseconds, stopped while this test looks, and
    # is killed while stopped: at whatever point of a poll the last slice ended, which is
    # mid-stream however fast the host or however late this process. The first kill must
    # interrupt the stream; a second one that comes too late still restarts a consumer.
    total = 3000
    _request_many(running, total)
    running.start_relay()
    wait_for(
        lambda: (
            count(
                running,
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None)),
            )
            == 0
        )
    )

    # The hub's SQLite sessions begin with BEGIN IMMEDIATE, which would wait for the lock a
    # stopped consumer holds; a plain engine reads beside it (WAL) as PostgreSQL does anyway.
    reader = create_engine(running.hub.engine.url, poolclass=NullPool)

    def rows_read_aside() -> int:
        with reader.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(TimelineEntry)) or 0)

    kills = []
    for _ in range(2):
        proc = running.spawn("consume", "timeline")
        before = timeline_rows(running)
        _run_in_slices(proc, lambda b=before: rows_read_aside() > min(b + 20, total - 1))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills.append(timeline_rows(running))
    assert kills[0] < total, f"the consumer finished before it could be killed: {kills}"

    running.spawn("consume", "timeline")
    wait_for(lambda: timeline_rows(running) >= total, timeout=120)
    time.sleep(2)  # anything applied twice would show up now
    assert timeline_rows(running) == total
    distinct = count(running, select(func.count(func.distinct(TimelineEntry.event_id))))
    assert distinct == total
    processed = count(
        running,
        select(func.count())
        .select_from(ProcessedEvent)
        .where(ProcessedEvent.consumer == "timeline"),
    )
    assert processed == total
    assert read_topic(running.hub.bootstrap_servers, "hub.deadletter.v1", expect=0, timeout=1) == []


def _unpublished(running: Running) -> int:
    return count(
        running,
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None)),
    )


def _outbox_drained(running: Running) -> None:
    wait_for(lambda: _unpublished(running) == 0, timeout=90)


def _published_once(running: Running, expected_ids: set[str]) -> None:
    _outbox_drained(running)
    records = read_topic(running.hub.bootstrap_servers, "hub.events.v1", expect=len(expected_ids))
    ids = [dict(r.headers)["ce_id"].decode() for r in records]
    seen = [i for i in ids if i in expected_ids]
    assert sorted(seen) == sorted(expected_ids), "every accepted event published exactly once"


def _accept(running: Running, n: int, offset: int) -> set[str]:
    """Create n referrals; return their event ids (all were answered 202)."""
    with api_client(running.hub) as client:
        ude = running.partners.headers(client, "ude")
        rids = []
        for i in range(n):
            r = client.post("/v1/referrals", json=referral(offset + i), headers=ude)
            assert r.status_code == 202, r.text
            rids.append(r.json()["id"])
    with running.hub.session_factory() as s:
        rows = s.scalars(select(OutboxEvent.event_id).where(OutboxEvent.topic == "hub.events.v1"))
        return set(rows)


def test_paused_broker_then_everything_is_published_once(
    running: Running, broker: EmbeddedBroker
) -> None:
    running.start_relay()
    _accept(running, 5, 0)
    broker.pause()
    try:
        with api_client(running.hub) as client:
            app_probe = running.hub.bootstrap_servers
            client.app.state.kafka_check = lambda: probe(app_probe, timeout=0.5)  # type: ignore[attr-defined]
            health = client.get("/health")
            assert health.status_code == 503
            assert health.json()["checks"] == {"database": "ok", "kafka": "down"}
        ids = _accept(running, 30, 100)
        assert _unpublished(running) >= 30
    finally:
        broker.resume()
    _published_once(running, ids)


def test_killed_and_restarted_broker_gets_what_the_hub_still_owes(
    running: Running, broker: EmbeddedBroker
) -> None:
    running.start_relay()
    published_before = _accept(running, 5, 0)
    _published_once(running, published_before)
    broker.kill()
    owed = _accept(running, 30, 100) - published_before
    broker.restart()
    # The embedded broker forgot everything; the hub re-sends what it still owes: the events
    # accepted meanwhile, and those published before that no consumer has applied (none runs
    # here), all of them and nothing else. A repeat is possible: the relay's producer may
    # outlive the restart and write part of its batch before it is replaced, and the
    # in-memory broker has forgotten the sequence numbers that would have dropped the
    # re-send (Apache Kafka keeps them). Consumers drop repeats by event id.
    owed |= published_before
    _outbox_drained(running)
    records: list[Any] = []

    def everything_owed_is_there() -> bool:
        """the topic holds every owed event (repeats count once)"""
        records[:] = read_topic(running.hub.bootstrap_servers, "hub.events.v1", len(owed), 5)
        return {dict(r.headers)["ce_id"].decode() for r in records} >= owed

    wait_for(everything_owed_is_there, timeout=30)
    assert {dict(r.headers)["ce_id"].decode() for r in records} == owed
    assert all(json.loads(r.value)["event_id"] in owed for r in records)


def test_broker_restarted_while_the_relay_idles_gets_everything_once(
    running: Running, broker: EmbeddedBroker
) -> None:
    """The relay notices the dead broker before it has anything to send and replaces its
    producer, so the restarted broker never meets a producer it cannot deduplicate."""
    running.start_relay()
    published_before = _accept(running, 5, 0)
    _published_once(running, published_before)
    broker.kill()
    time.sleep(3)  # the relay is idle: nothing to publish
    broker.start()
    owed = _accept(running, 30, 100) - published_before
    _published_once(running, owed)


def test_a_restarted_broker_gets_every_topic_back_with_the_hubs_partition_counts(
    running: Running, broker: EmbeddedBroker
) -> None:
    """The in-memory broker forgets its topics. The relay creates every topic of the hub's
    plan again on meeting it, with the plan's partition counts, also the topics it has
    nothing to send to; the consumers asking for their topics meanwhile create none."""
    running.start_relay()
    running.start_consumer_thread("timeline")
    _published_once(running, _accept(running, 5, 0))
    broker.kill()
    time.sleep(1)
    broker.start()
    plan = topic_plan(running.hub)
    counts: dict[str, int] = {}

    def every_topic_back() -> bool:
        """every topic of the plan exists again"""
        counts.update(partition_counts(broker.bootstrap_servers, list(plan)))
        return all(counts.get(topic, 0) > 0 for topic in plan)

    wait_for(every_topic_back, timeout=30)
    assert counts == plan
