"""A partner's error text stays out of the hub: a partner that echoes a person's name in its
422 answer leaves the name in no log record, delivery state, dead-letter header or
``delivery-failed`` event; the status code is still there in each of them.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from connectors.jobcenter.simulator import build
from connectors.simulator import SimulatorServer
from hub.db import unit_of_work
from hub.deadletters import service as dlq
from hub.deliveries.models import DeliveryState
from hub.outbox.models import OutboxEvent
from hub.partners.service import connect_partner
from hub.timeline.models import TimelineEntry
from schemas.cloudevents import EventType
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import start_delivery

pytestmark = pytest.mark.integration

NAME = "Wrzesniewska-Oyelaran"
REFERRAL = {
    "type": "jobcenter.integration",
    "performer": "jobcenter",
    "person": {"given_name": "Zofia", "family_name": NAME, "birth_date": "1991-02-03"},
    "payload": {"integration_course_needed": True},
}


def echoing_jobcenter(client_id: str, secret: str, signing: str) -> FastAPI:
    """The Jobcenter simulator, except that its webhook refuses every message with a 422 whose
    problem document names the person, as a careless partner system might."""
    app = build(client_id=client_id, client_secret=secret, signing_secret=signing, hub=None)

    @app.middleware("http")
    async def refuse(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path != "/webhook":
            return await call_next(request)
        body = {
            "type": "https://jobcenter.example/problems/duplicate-case",
            "title": f"Kundin {NAME} ist bereits erfasst",
            "status": 422,
            "detail": f"Für Zofia {NAME} (geb. 03.02.1991) besteht ein offener Fall",
        }
        return JSONResponse(body, 422, media_type="application/problem+json")

    return app


@pytest.fixture
def jobcenter(running: Running) -> Iterator[SimulatorServer]:
    client_id, secret, signing = "hub-at-jobcenter", secrets.token_urlsafe(16), "s" * 24
    server = SimulatorServer(echoing_jobcenter(client_id, secret, signing)).start()
    with unit_of_work(running.hub.session_factory) as session:
        connect_partner(
            session,
            partner_id="jobcenter",
            config={
                "mode": "push",
                "endpoint_url": f"{server.url}/webhook",
                "token_endpoint": f"{server.url}/oauth/token",
                "client_id": client_id,
                "credential_ref": f"value:{secret}",
                "signing_secret_ref": f"value:{signing}",
                "read_timeout": 2.0,
                "connect_timeout": 1.0,
            },
        )
    running.start_relay()
    for name in ("router", "timeline"):
        running.start_consumer_thread(name)
    start_delivery(running)
    yield server
    server.stop()


def log_text(record: logging.LogRecord) -> str:
    """A log record's message with every field it carries."""
    return record.getMessage() + " " + " ".join(f"{k}={v!r}" for k, v in vars(record).items())


def test_a_partners_error_text_is_reduced_to_its_status(
    running: Running, jobcenter: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = running.hub
    with api_client(hub) as client:
        r = client.post(
            "/v1/referrals", json=REFERRAL, headers=running.partners.headers(client, "amt")
        )
        assert r.status_code == 202, r.text
    rid = r.json()["id"]

    def dead_letters() -> list[dlq.DeadLetter]:
        """the refused message is in the dead-letter topic"""
        return [
            d
            for d in dlq.read_all(hub.bootstrap_servers, hub.settings)
            if d.recipient == "jobcenter"
        ]

    [letter] = wait_for(dead_letters, timeout=60)

    def failed_event() -> list[dict[str, Any]]:
        """the delivery-failed event is staged and on the timeline"""
        with hub.session_factory() as s:
            rows = [
                row
                for row in s.scalars(select(OutboxEvent)).all()
                if ["ce_type", EventType.REFERRAL_DELIVERY_FAILED] in row.headers
            ]
            on_timeline = s.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.referral_id == rid,
                    TimelineEntry.event_type == EventType.REFERRAL_DELIVERY_FAILED,
                )
            ).first()
            return [json.loads(row.value) for row in rows] if on_timeline else []

    [event] = wait_for(failed_event, timeout=60)
    with hub.session_factory() as s:
        state = s.get(DeliveryState, "jobcenter")
        assert state is not None
        last_error = state.last_error or ""

    # The reader keeps dlq_reason apart (``reason``) from the other headers.
    headers = {k: v.decode(errors="replace") for k, v in letter.headers}
    headers["dlq_reason"] = letter.reason
    logged = [log_text(rec) for rec in caplog.records]
    for where, text in {
        "dead-letter headers": json.dumps(headers, ensure_ascii=False),
        "dead-letter record": (letter.value or b"").decode(errors="replace"),
        "delivery state": last_error,
        "delivery-failed event": json.dumps(event, ensure_ascii=False),
        "logs": "\n".join(logged),
    }.items():
        assert NAME not in text, where
        assert "bereits erfasst" not in text and "offener Fall" not in text, where

    assert letter.reason == "partner answered 422 (rejected)"
    assert last_error == "partner answered 422 (rejected)"
    assert event["status_code"] == 422 and "422" in event["reason"]
    attempts = [rec for rec in caplog.records if rec.getMessage() == "delivery.attempted"]
    assert any(getattr(rec, "status_code", None) == 422 for rec in attempts)
