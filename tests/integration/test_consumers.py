"""Consumer runner behaviour on the real broker: poison records, clean stop, relay wake-up."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from hub.kafka.client import make_producer
from hub.outbox.models import OutboxEvent
from hub.timeline.models import TimelineEntry
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.test_referral_flow import read_topic

pytestmark = pytest.mark.integration


def test_poison_records_go_to_the_deadletter_topic_and_the_stream_flows_on(
    running: Running,
) -> None:
    producer = make_producer(running.hub.bootstrap_servers)
    bad = [
        (
            b"not json at all",
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"x-1"),
                ("ce_source", b"/partners/x"),
                ("ce_type", b"t"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
        ),
        (b'{"event_id": 1}', []),  # no CloudEvents headers
    ]
    for value, headers in bad:
        producer.send("hub.events.v1", key=b"p_poison", value=value, headers=headers).get(10)
    producer.close()

    running.start_relay()
    proc = running.spawn("consume", "timeline")
    with api_client(running.hub) as client:
        r = client.post(
            "/v1/referrals", json=STUDENT_REFERRAL, headers=running.partners.headers(client, "ude")
        )
        assert r.status_code == 202

    def projected() -> int:
        """the valid referral reaches the timeline despite the poison before it"""
        with running.hub.session_factory() as s:
            return int(s.scalar(select(func.count()).select_from(TimelineEntry)) or 0)

    wait_for(projected)
    dead = read_topic(running.hub.bootstrap_servers, "hub.deadletter.v1", expect=2)
    assert len(dead) == 2
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["dlq_original_topic"] == "hub.events.v1"
        assert headers["dlq_consumer"] == "timeline"
        assert int(headers["dlq_original_offset"]) >= 0 and headers["dlq_reason"]
    assert {r.value for r in dead} == {v for v, _ in bad}

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, "a consumer stops cleanly on SIGTERM"


def test_relay_in_its_own_process_wakes_on_commit(running: Running) -> None:
    """With a 60 s poll, only the commit notification (PostgreSQL) can publish within seconds."""
    if running.hub.engine.dialect.name != "postgresql":
        pytest.skip("cross-process wake-up uses PostgreSQL LISTEN/NOTIFY; SQLite runs one process")
    running.env["HUB_RELAY_POLL_INTERVAL_SECONDS"] = "60"
    running.spawn("relay")
    time.sleep(3)  # the relay's first (empty) poll is over; it now waits
    with api_client(running.hub) as client:
        headers = running.partners.headers(client, "ude")
        started = time.monotonic()
        assert (
            client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=headers).status_code == 202
        )

    def published() -> bool:
        """the outbox row is marked published"""
        with running.hub.session_factory() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                )
                == 0
            )

    wait_for(published, timeout=30, interval=0.05)
    assert time.monotonic() - started < 10
