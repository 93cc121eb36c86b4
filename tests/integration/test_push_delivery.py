"""Push delivery to partner simulators over real HTTP and OAuth on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.audit.models import AuditRecord
from hub.db import unit_of_work
from hub.deadletters import service as dlq
from hub.timeline.models import TimelineEntry
from schemas.cloudevents import EventType
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims

pytestmark = pytest.mark.integration

PERSON = {"given_name": "Arjun", "family_name": "Sharma", "birth_date": "1994-07-12"}

#: (requester, referral) for each performer kind.
REFERRALS: dict[str, tuple[str, dict[str, Any]]] = {
    "ihk-fosa": (
        "amt",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": PERSON,
            "payload": {"reference_occupation": "Elektroniker/in"},
        },
    ),
    "hwk": (
        "jobcenter",
        {
            "type": "recognition.assessment",
            "performer": "hwk",
            "person": PERSON,
            "payload": {"reference_occupation": "Kraftfahrzeugmechatroniker/in"},
        },
    ),
    "amt": ("ude", STUDENT_REFERRAL),
    "ude": (
        "amt",
        {
            "type": "university.enrolment-confirmation",
            "performer": "ude",
            "person": PERSON,
            "payload": {"semester": "2027S"},
        },
    ),
    "jobcenter": (
        "amt",
        {
            "type": "jobcenter.integration",
            "performer": "jobcenter",
            "person": PERSON,
            "payload": {"integration_course_needed": True},
        },
    ),
}


@pytest.fixture
def sims(running: Running) -> Iterator[dict[str, Sim]]:
    started = start_sims(running, list(REFERRALS))
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    start_delivery(running)
    yield started
    for sim in started.values():
        sim.server.stop()


def create(running: Running, client: Any, performer: str, n: int = 1) -> list[str]:
    requester, body = REFERRALS[performer]
    headers = running.partners.headers(client, requester)
    ids = []
    for _ in range(n):
        r = client.post("/v1/referrals", json=body, headers=headers)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def hub_cli(running: Running, *args: str) -> str:
    """Run a hub command against this hub; its stdout and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=running.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def delivered_referrals(sim: Sim) -> list[str]:
    return [d.referral_id for d in sim.received().values() if d.referral_id]


def test_each_connector_delivers_natively_with_oauth_and_signature(
    running: Running, sims: dict[str, Sim]
) -> None:
    with api_client(running.hub) as client:
        expected = {pid: create(running, client, pid)[0] for pid in REFERRALS}
    for pid, rid in expected.items():
        sim = sims[pid]
        wait_for(lambda s=sim, r=rid: r in delivered_referrals(s), timeout=60)
        [delivery] = [d for d in sim.received().values() if d.referral_id == rid]
        assert delivery.received_count == 1
        assert delivery.event_type == EventType.REFERRAL_REQUESTED
        native = json.dumps(delivery.body)
        assert rid in native, f"{pid}: the native payload names the hub referral"
        assert "ES012345601" not in native or pid == "ude"  # a partner's reference stays its own

    def delivered_on_timeline() -> bool:
        """every delivery shows as delivered on the timeline"""
        with running.hub.session_factory() as s:
            rows = s.scalars(
                select(TimelineEntry.referral_id).where(
                    TimelineEntry.event_type == EventType.REFERRAL_DELIVERED
                )
            ).all()
        return set(expected.values()) <= set(rows)

    wait_for(delivered_on_timeline, timeout=60)


def test_partner_outage_pauses_only_that_partner(
    running: Running, sims: dict[str, Sim], capsys: pytest.CaptureFixture[str]
) -> None:
    chamber = sims["ihk-fosa"]
    chamber.server.down()
    per_partner = 15
    with api_client(running.hub) as client:
        started = time.monotonic()
        created = {pid: create(running, client, pid, per_partner) for pid in REFERRALS}
    others = [pid for pid in REFERRALS if pid != "ihk-fosa"]
    for pid in others:
        wait_for(lambda p=pid: set(created[p]) <= set(delivered_referrals(sims[p])), timeout=90)
    elapsed = time.monotonic() - started
    assert delivered_referrals(chamber) == []
    with capsys.disabled():
        print(
            f"\n[outage] {len(others) * per_partner} deliveries to the other partners in "
            f"{elapsed:.1f} s while ihk-fosa was down "
            f"({len(others) * per_partner / elapsed:.1f} deliveries/s)"
        )

    chamber.server.up()
    wait_for(lambda: set(created["ihk-fosa"]) <= set(delivered_referrals(chamber)), timeout=120)
    time.sleep(1)
    for pid, sim in sims.items():
        got = delivered_referrals(sim)
        assert sorted(got) == sorted(created[pid]), f"{pid}: each referral delivered exactly once"
        assert all(d.received_count == 1 for d in sim.received().values())
    assert dlq.read_all(running.hub.bootstrap_servers, running.hub.settings) == []


def test_rejected_message_is_dead_lettered_shown_and_replayed_once(
    running: Running, sims: dict[str, Sim]
) -> None:
    jobcenter = sims["jobcenter"]
    with api_client(running.hub) as client:
        httpx.post(f"{jobcenter.server.url}/_sim/mode", json={"mode": "reject400"})
        [rid] = create(running, client, "jobcenter")
        fine = create(running, client, "amt")

        def dead_letters() -> list[dlq.DeadLetter]:
            """the rejected message is in the dead-letter topic"""
            return [
                d
                for d in dlq.read_all(running.hub.bootstrap_servers, running.hub.settings)
                if d.recipient == "jobcenter"
            ]

        [letter] = wait_for(dead_letters, timeout=60)
        assert "400" in letter.reason or "reject" in letter.reason.lower()

        def failure_on_timeline() -> bool:
            """the timeline shows the failed delivery"""
            with running.hub.session_factory() as s:
                return (
                    s.scalars(
                        select(TimelineEntry).where(
                            TimelineEntry.referral_id == rid,
                            TimelineEntry.event_type == EventType.REFERRAL_DELIVERY_FAILED,
                        )
                    ).first()
                    is not None
                )

        wait_for(failure_on_timeline, timeout=60)
        wait_for(lambda: set(fine) <= set(delivered_referrals(sims["amt"])), timeout=60)
        assert delivered_referrals(jobcenter) == []

        listed = hub_cli(running, "deadletters", "list", "--partner", "jobcenter")
        assert [json.loads(line)["id"] for line in listed.splitlines()] == [letter.id]

        httpx.post(f"{jobcenter.server.url}/_sim/mode", json={"mode": "ok"})
        assert f"replayed {letter.id}" in hub_cli(running, "deadletters", "replay", letter.id)
        with running.hub.session_factory() as session:
            replayed = session.scalars(
                select(AuditRecord).where(AuditRecord.action == "operator.deadletter_replayed")
            ).one()
        assert replayed.actor.startswith("cli:") and replayed.details["letter_id"] == letter.id
        # A second replay must not deliver it twice.
        with unit_of_work(running.hub.session_factory) as session:
            dlq.replay(session, letter=letter, catalogue=running.hub.catalogue)
        wait_for(lambda: rid in delivered_referrals(jobcenter), timeout=60)
        time.sleep(2)
        [delivery] = [d for d in jobcenter.received().values() if d.referral_id == rid]
        assert delivery.received_count == 1
        assert len(dead_letters()) == 1


def test_a_slow_partner_gets_several_persons_at_once_and_each_persons_events_in_order(
    running: Running, sims: dict[str, Sim]
) -> None:
    amt = sims["amt"]
    delay, persons, each = 1.0, 6, 2
    httpx.post(f"{amt.server.url}/_sim/mode", json={"mode": "slow", "delay": delay})
    requester, body = REFERRALS["amt"]
    created: dict[str, list[str]] = {}
    started = time.monotonic()
    with api_client(running.hub) as client:
        headers = running.partners.headers(client, requester)
        for _ in range(each):
            for n in range(persons):
                reference = f"ES0999{n:05d}"
                person = {**body["person"], "partner_reference": reference}
                r = client.post("/v1/referrals", json={**body, "person": person}, headers=headers)
                assert r.status_code == 202, r.text
                created.setdefault(reference, []).append(r.json()["id"])
    everything = {rid for ids in created.values() for rid in ids}
    wait_for(lambda: everything <= set(delivered_referrals(amt)), timeout=60)
    took = time.monotonic() - started
    one_by_one = persons * each * delay
    assert took < one_by_one * 2 / 3, f"{took:.1f} s: one at a time would take {one_by_one} s"
    arrived = delivered_referrals(amt)
    for reference, ids in created.items():
        assert [r for r in arrived if r in ids] == ids, f"{reference}: in the order made"
    assert all(d.received_count == 1 for d in amt.received().values())
