"""Helpers for the tests of Mein Verfahren: a client's case, invites, a signed-in browser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from hub.app import create_app
from hub.audit.sequencer import Sequencer
from hub.bootstrap import Hub
from hub.db import unit_of_work, utcnow
from hub.portal.invites import issue
from tests.hubtest import STUDENT_REFERRAL, Partners

PORTAL = "/mein-verfahren"


@dataclass
class Case:
    """A student's referral from the university to the Amt, and the people involved."""

    person_id: str
    referral_id: str
    birth_date: str


def portal_client(hub: Hub) -> TestClient:
    """A browser for the portal; https, since the session cookie is Secure."""
    return TestClient(create_app(hub, kafka_check=lambda: True), base_url="https://testserver")


def student_case(
    client: TestClient, partners: Partners, *, person: dict[str, Any] | None = None
) -> Case:
    """A residence.student referral, accepted, with documents requested by the Amt."""
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    body = {**STUDENT_REFERRAL, "person": person or STUDENT_REFERRAL["person"]}
    created = client.post("/v1/referrals", json=body, headers=ude)
    assert created.status_code == 202, created.text
    rid, pid = created.json()["id"], created.json()["person_id"]
    for step in (
        {"status": "accepted"},
        {"status": "in-progress", "business_status": "APPOINTMENT_BOOKED"},
        {
            "status": "in-progress",
            "business_status": "DOCUMENTS_REQUESTED",
            "note": "Intern: Akte 4711, Mietvertrag fehlt",
        },
    ):
        r = client.post(f"/v1/referrals/{rid}/status", json=step, headers=amt)
        assert r.status_code in (200, 202), r.text
    return Case(pid, rid, body["person"]["birth_date"])


def invite(hub: Hub, person_id: str, *, language: str | None = None, days: int = 30) -> str:
    """A fresh access code for the person, as a caseworker would issue it."""
    with unit_of_work(hub.session_factory) as session:
        issued = issue(
            session,
            person_id=person_id,
            by="caseworker@duisburg.test",
            by_type="staff",
            now=utcnow(),
            valid_days=days,
            language=language,
        )
    return issued.code


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(browser: TestClient, code: str, birth_date: str) -> httpx.Response:
    """Fill in the start page's form as a browser would."""
    page = browser.get(PORTAL + "/")
    return browser.post(
        PORTAL + "/",
        data={"code": code, "birth_date": birth_date, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def sequence(hub: Hub) -> None:
    """Number every committed audit record and sign a checkpoint, as the sequencer does."""
    Sequencer(session_factory=hub.session_factory, origin="duisburg.test/audit", interval=1).step()
