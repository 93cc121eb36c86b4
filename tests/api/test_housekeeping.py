"""Housekeeping deletes the technical rows that have done their job, and nothing owed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, update

from hub.cli import main
from hub.db import unit_of_work, utcnow
from hub.events.models import ProcessedEvent
from hub.events.service import mark_processed
from hub.housekeeping import service as housekeeping
from hub.inbox.models import InboxMessage
from hub.outbox.models import OutboxEvent
from hub.portal import sessions as client_sessions
from hub.portal.invites import issue
from hub.portal.models import ClientInvite
from hub.portal.sessions import IDLE_MINUTES
from hub.referrals.models import IdempotencyRecord
from hub.settings import Settings
from hub.web.accounts import add_staff, start_session
from hub.web.models import StaffSession
from tests.hubtest import STUDENT_REFERRAL, Partners

KEEP = 120


def referral(reference: str) -> dict[str, Any]:
    return {
        **STUDENT_REFERRAL,
        "person": {**STUDENT_REFERRAL["person"], "partner_reference": reference},
    }


def count(hub: Any, model: Any) -> int:
    with unit_of_work(hub.session_factory) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def settle_all(hub: Any, *, at: datetime) -> list[str]:
    """Mark every outbox row published and settled, as the relay does once its consumers
    applied it; the event id of each row (an event and its routed copy share one)."""
    with unit_of_work(hub.session_factory) as session:
        session.execute(update(OutboxEvent).values(published_at=at, settled_at=at))
        return list(session.scalars(select(OutboxEvent.event_id)))


def publish_unsettled(hub: Any, *, at: datetime) -> list[str]:
    """Mark the rows not yet published as published; no consumer has applied them all."""
    with unit_of_work(hub.session_factory) as session:
        ids = list(
            session.scalars(select(OutboxEvent.event_id).where(OutboxEvent.published_at.is_(None)))
        )
        session.execute(
            update(OutboxEvent).where(OutboxEvent.published_at.is_(None)).values(published_at=at)
        )
        return ids


def by_table(sweeps: list[housekeeping.Sweep]) -> dict[str, int]:
    return {s.table: s.rows for s in sweeps}


def test_sweep_keeps_what_may_be_needed_and_deletes_the_rest(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    hub = hub_and_partners[0]
    ude = {**partners.headers(client, "ude"), "Idempotency-Key": "ude-2026-0001"}
    first = client.post("/v1/referrals", json=referral("ES000000011"), headers=ude)
    assert first.status_code == 202, first.text
    t0 = utcnow()
    published = settle_all(hub, at=t0)
    with unit_of_work(hub.session_factory) as session:
        for event_id in set(published):
            mark_processed(session, consumer="hub.timeline", event_id=event_id)
        session.add(
            InboxMessage(
                partner_id="ude",
                event_id=published[0],
                event_type="referral.requested",
                data={},
                received_at=t0,
                acked_at=t0,
            )
        )
        account = add_staff(
            session,
            email="a@duisburg.test",
            role="caseworker",
            purposes=["residence"],
            password=None,
        )
        start_session(session, account=account, now=t0 - timedelta(days=2))  # expired
        start_session(session, account=account, now=t0)
        # Mein Verfahren: a code used at t0 and its session, idle since; an open code.
        person_id = first.json()["person_id"]
        used = issue(session, person_id=person_id, by="a", by_type="staff", now=t0)
        issue(session, person_id=person_id, by="a", by_type="staff", now=t0)
        session.get(ClientInvite, used.id).used_at = t0  # type: ignore[union-attr]
        client_sessions.start(
            session,
            person_id=person_id,
            invite_id=used.id,
            method="code",
            language=None,
            now=t0 - timedelta(minutes=IDLE_MINUTES + 1),
        )
    # Accepted after the others and published, but one consumer has not applied it yet: the
    # hub still owes it (a broker that forgets would make the relay send it again), and the
    # mark of the consumer that applied it must stay to drop that repeat.
    unsettled = client.post(
        "/v1/referrals", json=referral("ES000000013"), headers=partners.headers(client, "ude")
    )
    assert unsettled.status_code == 202, unsettled.text
    half_applied = publish_unsettled(hub, at=t0)
    with unit_of_work(hub.session_factory) as session:
        for event_id in set(half_applied):
            mark_processed(session, consumer="router", event_id=event_id)
    # Accepted after the others, and never published: the hub still owes it to Kafka.
    owed = client.post(
        "/v1/referrals", json=referral("ES000000012"), headers=partners.headers(client, "ude")
    )
    assert owed.status_code == 202, owed.text
    unpublished = count(hub, OutboxEvent) - len(published)
    assert unpublished >= 1 + len(half_applied)

    with unit_of_work(hub.session_factory) as session:
        now = by_table(housekeeping.due(session, now=t0, keep_days=KEEP))
    assert now == {
        "outbox": 0,
        "processed_events": 0,
        "idempotency_records": 0,
        "partner_inbox": 0,
        "staff_sessions": 1,
        "client_sessions": 1,
        "client_invites": 0,
    }

    # Within the horizon only sessions go (both have expired by then), and a partner's retry
    # still gets the first answer.
    with unit_of_work(hub.session_factory) as session:
        early = housekeeping.sweep(session, now=t0 + timedelta(days=KEEP - 1), keep_days=KEEP)
    assert by_table(early) == {**now, "staff_sessions": 2}  # the client session went at once
    retry = client.post("/v1/referrals", json=referral("ES000000011"), headers=ude)
    assert retry.json()["id"] == first.json()["id"]

    later = t0 + timedelta(days=KEEP, seconds=1)
    with unit_of_work(hub.session_factory) as session:
        planned = by_table(housekeeping.due(session, now=later, keep_days=KEEP))
    with unit_of_work(hub.session_factory) as session:
        done = by_table(housekeeping.sweep(session, now=later, keep_days=KEEP))
    assert (
        planned
        == done
        == {
            "outbox": len(published),
            "processed_events": len(set(published)),
            "idempotency_records": 1,
            "partner_inbox": 1,
            "staff_sessions": 0,
            "client_sessions": 0,
            "client_invites": 1,  # the used code; the open one is valid for 30 days
        }
    )
    assert count(hub, OutboxEvent) == unpublished
    assert (count(hub, ProcessedEvent), count(hub, IdempotencyRecord)) == (
        len(set(half_applied)),
        0,
    )
    assert (count(hub, InboxMessage), count(hub, StaffSession)) == (0, 0)

    # An unpublished or unsettled row is owed, however old, and so are its marks.
    with unit_of_work(hub.session_factory) as session:
        gone = by_table(
            housekeeping.sweep(session, now=t0 + timedelta(days=10_000), keep_days=KEEP)
        )
    assert gone["outbox"] == 0 and count(hub, OutboxEvent) == unpublished
    assert gone["processed_events"] == 0 and count(hub, ProcessedEvent) == len(set(half_applied))


def test_cli_dry_run_counts_and_the_run_deletes(
    client: TestClient, partners: Partners, hub_and_partners: Any, database_url: str, tmp_path: Path
) -> None:
    hub = hub_and_partners[0]
    r = client.post(
        "/v1/referrals", json=referral("ES000000013"), headers=partners.headers(client, "ude")
    )
    assert r.status_code == 202, r.text
    published = settle_all(hub, at=utcnow() - timedelta(days=KEEP + 1))
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)}
    runner = CliRunner()

    dry = runner.invoke(main, ["housekeeping", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert {line["table"]: line["rows"] for line in lines}["outbox"] == len(published)
    assert {line["action"] for line in lines} == {"would delete"}
    assert count(hub, OutboxEvent) == len(published)

    run = runner.invoke(main, ["housekeeping"], env=env)
    assert run.exit_code == 0, run.output
    assert {json.loads(x)["table"]: json.loads(x)["rows"] for x in run.stdout.splitlines()}[
        "outbox"
    ] == len(published)
    assert count(hub, OutboxEvent) == 0


def test_keep_days_cannot_be_shorter_than_a_dead_letter_lives() -> None:
    with pytest.raises(ValidationError, match="housekeeping_keep_days"):
        Settings(housekeeping_keep_days=30)
