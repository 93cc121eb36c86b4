"""Deadline clocks on a compressed time scale: warning and expiry once each, across a kill."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from sqlalchemy import select

from hub.deadlines.models import DeadlineNotice
from hub.timeline.models import TimelineEntry
from schemas.cloudevents import EventType
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import start_delivery, start_sims
from tests.integration.test_referral_flow import read_topic

pytestmark = pytest.mark.integration

DAY = 0.5  # seconds per clock day: receipt confirmation (1 month = 30 days) lasts 15 s


def notices(running: Running) -> list[tuple[str, str]]:
    with running.hub.session_factory() as s:
        return [
            (n.name, n.kind) for n in s.scalars(select(DeadlineNotice).order_by(DeadlineNotice.id))
        ]


@pytest.mark.hub_settings(clock_time_unit_seconds=DAY, deadline_scan_interval_seconds=0.25)
def test_recognition_clock_warns_and_expires_once_across_a_killed_consumer(
    running: Running,
) -> None:
    sims = start_sims(running, ["ihk-fosa"])  # reports nothing back: the chamber is late
    running.start_relay()
    for name in ("router", "timeline"):
        running.start_consumer_thread(name)
    start_delivery(running)
    deadlines = running.spawn("consume", "deadlines")
    try:
        with api_client(running.hub) as client:
            amt = running.partners.headers(client, "amt")
            rid = client.post(
                "/v1/referrals",
                headers=amt,
                json={
                    "type": "recognition.assessment",
                    "performer": "ihk-fosa",
                    "person": {"family_name": "Sharma"},
                    "payload": {"reference_occupation": "Elektroniker/in"},
                },
            ).json()["id"]
            wait_for(lambda: sims["ihk-fosa"].received(), timeout=60)

            wait_for(lambda: ("receipt-confirmation", "warning") in notices(running), timeout=60)
            deadlines.send_signal(signal.SIGKILL)
            deadlines.wait(timeout=10)
            deadlines = running.spawn("consume", "deadlines")
            wait_for(lambda: ("receipt-confirmation", "expired") in notices(running), timeout=60)
            time.sleep(2)  # a repeat would show now
            assert notices(running) == [
                ("receipt-confirmation", "warning"),
                ("receipt-confirmation", "expired"),
            ]

            view = client.get(f"/v1/referrals/{rid}", headers=amt).json()
            [clock] = [c for c in view["clocks"] if c["name"] == "receipt-confirmation"]
            assert clock["state"] == "expired" and clock["time_left_seconds"] < 0

            def overdue(partner: str) -> list[str]:
                page = client.get(
                    "/v1/referrals",
                    params={"overdue": "true"},
                    headers=running.partners.headers(client, partner),
                ).json()
                return [i["id"] for i in page["items"]]

            assert overdue("ihk-fosa") == [rid]
            assert overdue("hwk") == [] and overdue("amt") == []

        def on_timeline() -> list[Any]:
            """both deadline events reach the person's timeline"""
            with running.hub.session_factory() as s:
                rows = s.scalars(
                    select(TimelineEntry).where(
                        TimelineEntry.event_type == EventType.REFERRAL_DEADLINE_DUE
                    )
                ).all()
            return list(rows) if len(rows) >= 2 else []

        assert len(wait_for(on_timeline)) == 2
        records = read_topic(running.hub.bootstrap_servers, "hub.events.v1", expect=1)
        due = [
            dict(r.headers)["ce_id"]
            for r in records
            if dict(r.headers)["ce_type"] == EventType.REFERRAL_DEADLINE_DUE.encode()
        ]
        assert len(due) == len(set(due)) == 2
    finally:
        deadlines.send_signal(signal.SIGTERM)
        for sim in sims.values():
            sim.server.stop()


@pytest.mark.hub_settings(clock_time_unit_seconds=DAY)
def test_digest_lists_each_partners_overdue_work(running: Running) -> None:
    from hub.db import unit_of_work, utcnow
    from hub.deadlines import digest
    from hub.deadlines.service import announce_due, overdue_counts

    running.start_consumer_thread("deadlines")
    running.start_relay()
    with api_client(running.hub) as client:
        rid = client.post(
            "/v1/referrals",
            headers=running.partners.headers(client, "amt"),
            json={
                "type": "recognition.assessment",
                "performer": "hwk",
                "person": {"family_name": "X"},
                "payload": {},
            },
        ).json()["id"]

    def counted() -> list[tuple[str, str, int]]:
        """the overdue clock is counted for the dashboard"""
        with unit_of_work(running.hub.session_factory) as s:
            announce_due(
                s, catalogue=running.hub.catalogue, settings=running.hub.settings, now=utcnow()
            )
            return overdue_counts(s, now=utcnow())

    assert wait_for(counted, timeout=60) == [("hwk", "recognition.assessment", 1)]
    with running.hub.session_factory() as s:
        texts = digest.compose(s, now=utcnow())
    assert set(texts) == {"hwk"} and rid in texts["hwk"] and "OVERDUE since" in texts["hwk"]
    [path] = digest.send(texts, settings=running.hub.settings, now=utcnow())
    assert path.endswith("hwk.txt")
