"""Retention ends open referrals nobody reported on, then shreds them on the usual schedule.

An open referral idle (no status change) for longer than its route's ``idle_days`` is
cancelled by the hub with the reason ``retention-idle``; both parties hear of it through the
routed status change, and the route's retention period runs from the closing. With
``HUB_CLOCK_TIME_UNIT_SECONDS`` a retention day is that many seconds, as for the clocks.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.cli import main
from hub.db import unit_of_work, utcnow
from hub.deadlines.models import ClockInstance
from hub.policy.model import DEFAULT_IDLE_DAYS, Route
from hub.privacy import retention
from hub.referrals.models import Referral, StatusHistory
from tests.api.test_consent_withdrawal import run_consumers
from tests.hubtest import STUDENT_REFERRAL, Partners, api_client, make_hub

LONG_AGO = datetime(2015, 3, 2, 9, 30, tzinfo=UTC)
IDLE, RETENTION = 730, 730  # the policy's residence.student route (ude -> amt)


def _refer(client: TestClient, ude: dict[str, str], reference: str) -> str:
    person = {**STUDENT_REFERRAL["person"], "partner_reference": reference}
    r = client.post("/v1/referrals", json={**STUDENT_REFERRAL, "person": person}, headers=ude)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _back_date(hub: Hub, referral_id: str, when: datetime) -> None:
    """As if every status change of the referral had happened at ``when``."""
    with unit_of_work(hub.session_factory) as session:
        session.execute(
            update(Referral)
            .where(Referral.id == referral_id)
            .values(created_at=when, updated_at=when, version=Referral.version + 1)
        )
        session.execute(
            update(StatusHistory)
            .where(StatusHistory.referral_id == referral_id)
            .values(occurred_at=when, recorded_at=when)
        )


def _run(hub: Hub, now: datetime, day: timedelta = retention.DAY) -> retention.Report:
    """One night's retention run."""
    with unit_of_work(hub.session_factory) as session:
        return retention.run(
            session, policy=hub.policy, now=now, topic=hub.settings.topic_events, day=day
        )


def _closings(client: TestClient, headers: dict[str, str], referral_id: str) -> list[Any]:
    items = client.get("/v1/inbox", headers=headers).json()["items"]
    return [
        (i["data"]["status"], i["data"]["reason"])
        for i in items
        if i["referral_id"] == referral_id and i["data"].get("status") == "cancelled"
    ]


def test_an_idle_open_referral_is_closed_both_parties_told_and_later_shredded(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    idle, active = _refer(client, ude, "ES000000101"), _refer(client, ude, "ES000000102")
    r = client.post(f"/v1/referrals/{idle}/status", json={"status": "accepted"}, headers=amt)
    assert r.status_code == 200, r.text
    run_consumers(hub)
    _back_date(hub, idle, LONG_AGO)

    now = utcnow()
    with unit_of_work(hub.session_factory) as session:
        planned = retention.plan(session, policy=hub.policy, now=now)
    assert [(i.referral_id, i.status, i.idle_days) for i in planned.closed] == [
        (idle, "accepted", IDLE)
    ]
    assert planned.shredded == []  # the retention period starts with the closing
    assert client.get(f"/v1/referrals/{idle}", headers=ude).json()["status"] == "accepted"

    report = _run(hub, now)
    assert [i.referral_id for i in report.closed] == [idle] and report.shredded == []
    read = client.get(f"/v1/referrals/{idle}", headers=ude).json()
    assert read["status"] == "cancelled" and read["payload"]["programme"]
    with hub.session_factory() as s:
        [audit] = s.scalars(
            select(AuditRecord).where(AuditRecord.action == "referral.closed_idle")
        ).all()
        running = s.scalars(
            select(ClockInstance).where(
                ClockInstance.referral_id == idle, ClockInstance.state.in_(("running", "expired"))
            )
        ).all()
        history = s.get_one(Referral, idle).history
    assert audit.details["referral_id"] == idle and audit.person_id == read["person_id"]
    assert running == []
    assert (history[-1].status, history[-1].reason) == ("cancelled", "retention-idle")

    run_consumers(hub)
    for headers in (ude, amt):
        assert _closings(client, headers, idle) == [("cancelled", "retention-idle")]

    # the recently active referral is untouched
    kept = client.get(f"/v1/referrals/{active}", headers=ude).json()
    assert kept["status"] == "requested" and kept["payload"]["programme"]

    assert _run(hub, now + timedelta(days=1)) == retention.Report()  # nothing twice
    assert _run(hub, now + timedelta(days=RETENTION - 1)).shredded == []
    [shredded] = _run(hub, now + timedelta(days=RETENTION, minutes=1)).shredded
    assert shredded.referral_id == idle
    assert client.get(f"/v1/referrals/{idle}", headers=ude).json()["payload"] == {}
    assert client.get(f"/v1/referrals/{active}", headers=ude).json()["payload"]["programme"]


def test_a_status_change_keeps_an_old_referral_open(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    """Idle counts from the last status change, not from the referral's creation."""
    hub, partners = hub_and_partners
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    rid = _refer(client, ude, "ES000000103")
    _back_date(hub, rid, LONG_AGO)
    r = client.post(f"/v1/referrals/{rid}/status", json={"status": "accepted"}, headers=amt)
    assert r.status_code == 200, r.text

    assert _run(hub, utcnow()) == retention.Report()
    assert _run(hub, utcnow() + timedelta(days=IDLE - 1)).closed == []
    [closed] = _run(hub, utcnow() + timedelta(days=IDLE, minutes=1)).closed
    assert closed.referral_id == rid


def test_with_the_compressed_clock_retention_runs_in_seconds(
    database_url: str, tmp_path: Path
) -> None:
    """``hub retention`` with HUB_CLOCK_TIME_UNIT_SECONDS: idle closing and shredding follow
    each other within seconds of wall time, as the policy's days scaled down."""
    # 730 days idle, then 730 days kept: about 3.7 s each. The run right after the closing
    # must come within the kept time, and one `hub retention` takes over a second on a
    # loaded machine.
    unit = 0.005
    hub, partners = make_hub(database_url, tmp_path, clock_time_unit_seconds=unit)
    env = {
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_CLOCK_TIME_UNIT_SECONDS": str(unit),
    }

    def hub_retention(*args: str) -> list[dict[str, Any]]:
        result = CliRunner().invoke(main, ["retention", *args], env=env)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]

    try:
        with api_client(hub) as client:
            ude = partners.headers(client, "ude")
            rid = _refer(client, ude, "ES000000104")
            started = time.monotonic()
            assert hub_retention("--dry-run") == []
            time.sleep(IDLE * unit + 0.2)
            [would] = hub_retention("--dry-run")
            assert (would["referral_id"], would["action"]) == (rid, "would close (idle)")
            [closed] = hub_retention()
            assert (closed["referral_id"], closed["action"]) == (rid, "closed (idle)")
            assert client.get(f"/v1/referrals/{rid}", headers=ude).json()["status"] == "cancelled"
            assert hub_retention() == []
            time.sleep(RETENTION * unit + 0.2)
            [shredded] = hub_retention()
            assert (shredded["referral_id"], shredded["action"]) == (rid, "shredded")
            assert client.get(f"/v1/referrals/{rid}", headers=ude).json()["payload"] == {}
            assert time.monotonic() - started < 30
    finally:
        hub.engine.dispose()


def test_the_compressed_clock_is_ignored_in_production() -> None:
    """A stray HUB_CLOCK_TIME_UNIT_SECONDS must not shred in minutes what is kept for years."""
    from hub.settings import Settings

    dev = Settings(clock_time_unit_seconds=0.5)
    assert retention.day_length(dev) == timedelta(seconds=0.5)
    assert retention.day_length(Settings()) == timedelta(days=1)
    prod = Settings.model_construct(profile="production", clock_time_unit_seconds=0.5)
    assert retention.day_length(prod) == timedelta(days=1)


def test_a_route_without_idle_days_keeps_an_open_referral_three_years() -> None:
    route = Route.model_validate(
        {
            "requester": "ude",
            "performer": "amt",
            "type": "residence.student",
            "purpose": "residence",
            "legal_basis": "§ 81 Abs. 1 AufenthG",
            "basis_reason": "the student's own application",
            "retention_days": 730,
            "fields": [],
        }
    )
    assert route.idle_days == DEFAULT_IDLE_DAYS == 1095


def test_an_idle_consent_based_referral_is_closed_for_both_parties_after_withdrawal(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    """The hub's closing carries no personal data: it reaches the performer though the
    consent the route rests on was withdrawn meanwhile."""
    from tests.api.test_consent_withdrawal import COUNSELLING, create, setup_person

    hub, partners = hub_and_partners
    jc, amt = partners.headers(client, "jobcenter"), partners.headers(client, "amt")
    pid, consent_id = setup_person(client, jc)
    rid = create(client, jc, COUNSELLING, pid)
    run_consumers(hub)
    assert client.post(f"/v1/consents/{consent_id}/withdraw", headers=jc).status_code == 200
    _back_date(hub, rid, LONG_AGO)

    assert [i.referral_id for i in _run(hub, utcnow()).closed] == [rid]
    run_consumers(hub)
    for headers in (jc, amt):
        assert _closings(client, headers, rid) == [("cancelled", "retention-idle")]
