"""The person page opens with the open work, and its timeline reads one line per event.

Open referrals come first with who acts next, the next deadline and what is overdue (in
words, not only in colour); a delivery is folded into the event it delivered.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.db import unit_of_work, utcnow
from hub.deliveries.service import outcome_event_id
from hub.referrals.models import Referral, StatusHistory
from hub.timeline.models import TimelineEntry
from hub.web.accounts import add_staff
from tests.staffweb import PASSWORD, staff_client
from tests.staffweb import log_in as login

EVENTS = "de.duisburg.talenthub.referral."


@pytest.fixture
def browser(hub_and_partners: Any) -> Iterator[TestClient]:
    hub, _ = hub_and_partners
    with unit_of_work(hub.session_factory) as session:
        add_staff(
            session,
            email="res@duisburg.de",
            role="caseworker",
            purposes=["residence"],
            password=PASSWORD,
        )
    with staff_client(hub) as c:
        yield c


def refer(client: TestClient, partners: Any, person: dict[str, Any]) -> dict[str, Any]:
    body = {"type": "residence.student", "performer": "amt", "person": person}
    body["payload"] = {"programme": "Maschinenbau M.Sc."}
    r = client.post("/v1/referrals", json=body, headers=partners.headers(client, "ude"))
    assert r.status_code == 202, r.text
    return dict(r.json())


def backdate(hub: Any, referral_id: str, days: int) -> None:
    """Move the referral's history into the past, as if it had waited ``days`` days."""
    with unit_of_work(hub.session_factory) as session:
        for h in session.scalars(
            select(StatusHistory).where(StatusHistory.referral_id == referral_id)
        ):
            h.occurred_at -= timedelta(days=days)
            h.recorded_at -= timedelta(days=days)


def entry(
    hub: Any,
    person: str,
    referral_id: str,
    kind: str,
    source: str,
    at: datetime,
    event_id: str | None = None,
) -> str:
    event_id = event_id or str(uuid.uuid4())
    with unit_of_work(hub.session_factory) as session:
        session.add(
            TimelineEntry(
                event_id=event_id,
                person_id=person,
                referral_id=referral_id,
                referral_type="residence.student",
                source_partner=source,
                event_type=f"{EVENTS}{kind}.v1",
                status="requested" if kind == "requested" else None,
                purpose="residence",
                legal_basis="§ 16b AufenthG",
                occurred_at=at,
                recorded_at=at,
            )
        )
    return event_id


def cards(page: str) -> list[str]:
    return re.findall(r'<li class="open-ref[^"]*">(.*?)</li>', page, flags=re.S)


def test_open_referrals_come_first_with_next_actor_deadline_and_overdue(
    browser: TestClient, hub_and_partners: Any, partners: Any
) -> None:
    hub, _ = hub_and_partners
    fresh = refer(browser, partners, {"given_name": "Wei", "family_name": "Li"})
    person = fresh["person_id"]
    late = refer(browser, partners, {"id": person})
    done = refer(browser, partners, {"id": person})
    backdate(hub, late["id"], 30)  # the first appointment was due within 10 working days
    with unit_of_work(hub.session_factory) as session:
        session.get_one(Referral, done["id"]).status = "cancelled"
    login(browser, "res@duisburg.de")

    page = browser.get(f"/staff/people/{person}").text
    summary = page[page.index('id="sum-h"') : page.index('id="refs-h"')]
    assert "2 offen, davon 1 überfällig" in summary
    first, second = cards(summary)
    assert done["id"] not in summary, "a cancelled referral is not open work"
    # Overdue first, marked in words and by its due day, not by colour alone.
    assert late["id"] in first and 'class="open-ref late"' in summary
    assert "Überfällig" in first and "Ersttermin, fällig am" in first
    assert "Überfällig" not in second and fresh["id"] in second
    # The Amt performs a requested referral: it has to act, and its first-appointment is next.
    for card in (first, second):
        assert "Am Zug" in card and "(leistende Stelle)" in card
        assert "Angefragt" in card or "angefragt" in card
    due = re.search(r'<dd class="due">Ersttermin: <time datetime="([^"]+)">', second)
    assert due is not None, second
    assert datetime.fromisoformat(due.group(1)) > utcnow()
    # The summary stands above the timeline.
    assert page.index('id="sum-h"') < page.index('id="tl-h"')


def test_a_delivery_is_folded_into_the_event_it_delivered(
    browser: TestClient, hub_and_partners: Any, partners: Any
) -> None:
    hub, _ = hub_and_partners
    referral = refer(browser, partners, {"given_name": "Ana", "family_name": "Silva"})
    person, rid = referral["person_id"], referral["id"]
    now = utcnow()
    requested = entry(hub, person, rid, "requested", "ude", now - timedelta(minutes=5))
    delivered = str(outcome_event_id("delivered", partner_id="amt", event_id=requested))
    entry(hub, person, rid, "delivered", "amt", now - timedelta(minutes=4), delivered)
    # An outcome whose event is not on the timeline stays a line of its own.
    orphan = str(outcome_event_id("failed", partner_id="amt", event_id=str(uuid.uuid4())))
    entry(hub, person, rid, "delivery-failed", "amt", now - timedelta(minutes=3), orphan)
    login(browser, "res@duisburg.de")

    page = browser.get(f"/staff/people/{person}").text
    lines = re.findall(r'<li class="entry (k-[\w-]+)"', page)
    assert lines == ["k-referral-delivery-failed", "k-referral-requested"]
    line = page[page.index('class="entry k-referral-requested"') :]
    summary = line[: line.index("</summary>")]
    assert "zugestellt an" in summary and "Amt für Integration" in summary
    assert "<details>" in line[:200], "details open on click"

    # The filters still work: asking for deliveries shows them as lines.
    only = browser.get(
        f"/staff/people/{person}/entries", params={"type": f"{EVENTS}delivered.v1"}
    ).text
    assert re.findall(r'<li class="entry (k-[\w-]+)"', only) == ["k-referral-delivered"]
    by_ude = browser.get(f"/staff/people/{person}/entries", params={"partner": "ude"}).text
    assert re.findall(r'<li class="entry (k-[\w-]+)"', by_ude) == ["k-referral-requested"]
