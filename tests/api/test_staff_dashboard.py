"""The backlog dashboard: exact figures on the page, in the CSV and in the JSON view."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.audit.models import AuditRecord
from hub.db import unit_of_work, utcnow
from hub.deadlines.models import ClockInstance
from hub.referrals.models import Referral, StatusHistory
from hub.web.accounts import add_staff
from hub.web.dashboard import backlog
from hub.web.pages import BERLIN
from tests.hubtest import Partners
from tests.staffweb import PASSWORD, log_in, staff_client

PERSON = {"given_name": "Arjun", "family_name": "Sharma"}


@pytest.fixture
def staff_hub(hub_and_partners: Any) -> Any:
    hub, _ = hub_and_partners
    with unit_of_work(hub.session_factory) as session:
        for email, role in (
            ("cw@duisburg.de", "caseworker"),
            ("admin@duisburg.de", "admin"),
            ("dpo@duisburg.de", "dpo"),
        ):
            add_staff(session, email=email, role=role, purposes=["residence"], password=PASSWORD)
    return hub


@pytest.fixture
def browser(staff_hub: Any) -> Iterator[TestClient]:
    with staff_client(staff_hub) as c:
        yield c


def login(client: TestClient, email: str) -> None:
    r = log_in(client, email)
    assert r.status_code == 303, r.text


def refer(client: TestClient, partners: Partners, requester: str, body: dict[str, Any]) -> str:
    r = client.post("/v1/referrals", json=body, headers=partners.headers(client, requester))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def student(client: TestClient, partners: Partners) -> str:
    """UDE asks the Amt for a student's residence permit."""
    body = {
        "type": "residence.student",
        "performer": "amt",
        "person": PERSON,
        "payload": {"programme": "Physik"},
    }
    return refer(client, partners, "ude", body)


def move(client: TestClient, partners: Partners, rid: str, *steps: dict[str, str]) -> None:
    amt = partners.headers(client, "amt")
    for step in steps:
        r = client.post(f"/v1/referrals/{rid}/status", json=step, headers=amt)
        assert r.status_code == 200, r.text


def backdate(hub: Any, rid: str, created_at: datetime) -> None:
    with unit_of_work(hub.session_factory) as session:
        session.execute(update(Referral).where(Referral.id == rid).values(created_at=created_at))


def clock(referral_id: str, performer: str, rtype: str, state: str, due: datetime) -> ClockInstance:
    return ClockInstance(
        referral_id=referral_id,
        name=f"clock-{state}",
        referral_type=rtype,
        performer_id=performer,
        requester_id="amt",
        person_id="p_test",
        state=state,
        due_at=due,
    )


def week_of(moment: datetime) -> str:
    year, week, _ = moment.astimezone(BERLIN).isocalendar()
    return f"{year}-W{week:02d}"


@pytest.fixture
def backlog_data(browser: TestClient, staff_hub: Any, partners: Partners) -> dict[str, Any]:
    """Six referrals to three performers, two of them closed, some backdated, four clocks."""
    now = utcnow()
    waiting = student(browser, partners)  # amt, requested, 10 days old
    working = student(browser, partners)  # amt, in progress, new
    done = student(browser, partners)  # amt, completed this week
    refused = student(browser, partners)  # amt, rejected 20 days ago
    move(browser, partners, working, {"status": "accepted"}, {"status": "in-progress"})
    move(browser, partners, done, {"status": "accepted"}, {"status": "completed"})
    move(browser, partners, refused, {"status": "rejected", "reason": "not-eligible"})
    enrolment = refer(  # ude, requested, 40 days old
        browser,
        partners,
        "amt",
        {
            "type": "university.enrolment-confirmation",
            "performer": "ude",
            "person": PERSON,
            "payload": {"semester": "2027S"},
        },
    )
    recognition = refer(  # ihk-fosa, requested, 100 days old: before the 8 weeks
        browser,
        partners,
        "amt",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": PERSON,
            "payload": {"reference_occupation": "Elektroniker/in"},
        },
    )
    backdate(staff_hub, waiting, now - timedelta(days=10))
    backdate(staff_hub, enrolment, now - timedelta(days=40))
    backdate(staff_hub, recognition, now - timedelta(days=100))
    with unit_of_work(staff_hub.session_factory) as session:
        session.execute(
            update(StatusHistory)
            .where(StatusHistory.referral_id == refused, StatusHistory.status == "rejected")
            .values(recorded_at=now - timedelta(days=20))
        )
        past, future = now - timedelta(hours=1), now + timedelta(days=3)
        session.add_all(
            [
                clock(recognition, "ihk-fosa", "recognition.assessment", "expired", past),
                clock(recognition, "ihk-fosa", "recognition.assessment", "running", past),
                clock(waiting, "amt", "residence.student", "running", past),
                clock(working, "amt", "residence.student", "running", future),
                clock(done, "amt", "residence.student", "stopped", past),
            ]
        )
    return {"now": now, "waiting": waiting, "recognition": recognition}


def expected_throughput(now: datetime) -> dict[str, tuple[int, int]]:
    """(created, closed) per week label, for the weeks that have any."""
    weeks: dict[str, tuple[int, int]] = {}
    for moment, created, closed in (
        (now, 3, 1),  # working, done, refused created; done closed
        (now - timedelta(days=10), 1, 0),  # waiting created
        (now - timedelta(days=20), 0, 1),  # refused closed
        (now - timedelta(days=40), 1, 0),  # enrolment created
    ):
        c, d = weeks.get(week_of(moment), (0, 0))
        weeks[week_of(moment)] = (c + created, d + closed)
    return weeks


def test_the_json_view_has_the_exact_figures(
    browser: TestClient, backlog_data: dict[str, Any]
) -> None:
    login(browser, "cw@duisburg.de")
    r = browser.get("/staff/dashboard.json")
    assert r.status_code == 200, r.text
    data = r.json()
    zero = {"requested": 0, "received": 0, "accepted": 0, "in-progress": 0, "on-hold": 0}
    assert data["open"] == {
        "amt": zero | {"requested": 1, "in-progress": 1},
        "ihk-fosa": zero | {"requested": 1},
        "ude": zero | {"requested": 1},
    }
    no_age = {"under-7": 0, "7-30": 0, "31-90": 0, "over-90": 0}
    assert data["age"] == {
        "amt": no_age | {"under-7": 1, "7-30": 1},
        "ihk-fosa": no_age | {"over-90": 1},
        "ude": no_age | {"31-90": 1},
    }
    assert data["overdue"] == [
        {"partner": "amt", "type": "residence.student", "count": 1},
        {"partner": "ihk-fosa", "type": "recognition.assessment", "count": 2},
    ]
    weeks = data["throughput"]
    assert len(weeks) == 8
    assert weeks[-1]["week"] == week_of(backlog_data["now"])
    assert datetime.fromisoformat(weeks[-1]["start"]).weekday() == 0
    seen = {w["week"]: (w["created"], w["closed"]) for w in weeks if w["created"] or w["closed"]}
    assert seen == expected_throughput(backlog_data["now"])


def test_the_csv_export_has_the_same_numbers(
    browser: TestClient, backlog_data: dict[str, Any]
) -> None:
    login(browser, "admin@duisburg.de")
    data = browser.get("/staff/dashboard.json").json()
    r = browser.get("/staff/dashboard.csv?format=codes")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    day = utcnow().astimezone(BERLIN).date().isoformat()
    assert r.headers["content-disposition"] == (
        f'attachment; filename="talent-hub-backlog-{day}-codes.csv"'
    )
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["section", "partner", "key", "value"]
    got = {(s, p, k): int(v) for s, p, k, v in rows[1:]}
    want: dict[tuple[str, str, str], int] = {}
    for section in ("open", "age"):
        for partner, counts in data[section].items():
            want |= {(section, partner, key): n for key, n in counts.items()}
    want |= {("overdue", o["partner"], o["type"]): o["count"] for o in data["overdue"]}
    for w in data["throughput"]:
        want[("throughput-created", "", w["week"])] = w["created"]
        want[("throughput-closed", "", w["week"])] = w["closed"]
    assert got == want
    assert len(rows) - 1 == len(want) == 15 + 12 + 2 + 16
    assert got[("age", "ihk-fosa", "over-90")] == 1


def test_the_csv_for_people_has_labels_and_the_same_numbers(
    browser: TestClient, backlog_data: dict[str, Any]
) -> None:
    login(browser, "admin@duisburg.de")
    codes = list(csv.reader(io.StringIO(browser.get("/staff/dashboard.csv?format=codes").text)))
    r = browser.get("/staff/dashboard.csv")
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["Bereich", "Ausführender Partner", "Merkmal", "Anzahl"]
    assert [row[3] for row in rows[1:]] == [row[3] for row in codes[1:]]
    assert [
        "überfällige Fristen",
        "IHK FOSA - Foreign Skills Approval",
        "Anerkennung einer ausländischen Berufsqualifikation",
        "2",
    ] in rows
    assert ["offen nach Alter", "IHK FOSA - Foreign Skills Approval", "über 90 Tage", "1"] in rows
    text = r.text
    for code in ("ihk-fosa", "recognition.assessment", "in-progress", "over-90", "-W"):
        assert code not in text, code
    browser.get("/staff/lang/en?next=/staff/dashboard")
    english = list(csv.reader(io.StringIO(browser.get("/staff/dashboard.csv").text)))
    assert english[0] == ["Section", "Performing partner", "Category", "Count"]
    assert [
        "open by status",
        "Amt für Integration und Einwanderungsservice Duisburg",
        "in progress",
        "1",
    ] in english


def test_the_page_shows_charts_and_tables_and_is_audited(
    browser: TestClient, staff_hub: Any, backlog_data: dict[str, Any]
) -> None:
    login(browser, "cw@duisburg.de")
    page = browser.get("/staff/dashboard")
    assert page.status_code == 200, page.text
    html = page.text
    assert "Rückstände und Fristen" in html and "Offene Überweisungen" in html
    for chart in ("chart-open", "chart-age", "chart-overdue", "chart-throughput"):
        svg = re.search(rf'<svg id="{chart}"[^>]*>', html)
        assert svg, chart
        assert 'role="img"' in svg.group(0)
        assert f'aria-labelledby="{chart}-title"' in svg.group(0)
        assert f'<title id="{chart}-title">' in html
    bar = re.search(r'data-row="ihk-fosa/recognition.assessment"[^>]*data-value="(\d+)"', html)
    assert bar and bar.group(1) == "2"
    amt_row = re.search(r'<tr data-partner="amt">(.*?)</tr>', html, re.S)
    assert amt_row
    assert re.findall(r'<td class="num">(\d+)</td>', amt_row.group(1)) == [
        "1",
        "0",
        "0",
        "1",
        "0",
        "2",
    ]
    assert " style=" not in html and "<style" not in html
    assert html.count("<script") == 1, "only htmx, no inline scripts"
    english = browser.get("/staff/lang/en?next=/staff/dashboard")
    assert "Open referrals by partner and status" in english.text

    with staff_hub.session_factory() as session:
        views = [
            (a.actor, a.person_id, a.details)
            for a in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
            if a.action == "staff.dashboard_viewed"
        ]
    assert views == [("cw@duisburg.de", None, {}), ("cw@duisburg.de", None, {})]


def test_age_buckets_count_whole_days(staff_hub: Any, backlog_data: dict[str, Any]) -> None:
    """Exactly 7 days old is in 7-30; a microsecond younger is under 7; 91 days is over 90."""
    now = backlog_data["now"]
    backdate(staff_hub, backlog_data["waiting"], now - timedelta(days=7))
    backdate(staff_hub, backlog_data["recognition"], now - timedelta(days=91))
    with staff_hub.session_factory() as session:
        figures = backlog(session, now=now)
        assert figures.ages["amt"] == {"under-7": 1, "7-30": 1, "31-90": 0, "over-90": 0}
        assert figures.ages["ihk-fosa"]["over-90"] == 1
        later = backlog(session, now=now - timedelta(microseconds=1))
        assert later.ages["amt"]["under-7"] == 2
        assert later.ages["ihk-fosa"] == {"under-7": 0, "7-30": 0, "31-90": 1, "over-90": 0}


def test_other_roles_and_visitors_are_refused(browser: TestClient) -> None:
    for path in ("/staff/dashboard", "/staff/dashboard.csv", "/staff/dashboard.json"):
        r = browser.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/staff/login?next={path}"
    login(browser, "dpo@duisburg.de")
    for path in ("/staff/dashboard", "/staff/dashboard.csv", "/staff/dashboard.json"):
        r = browser.get(path)
        assert r.status_code == 403
        assert "Keine Berechtigung" in r.text


def test_an_empty_hub_shows_zeros(browser: TestClient) -> None:
    login(browser, "cw@duisburg.de")
    data = browser.get("/staff/dashboard.json").json()
    assert data["open"] == {} and data["age"] == {} and data["overdue"] == []
    assert [(w["created"], w["closed"]) for w in data["throughput"]] == [(0, 0)] * 8
    page = browser.get("/staff/dashboard")
    assert page.status_code == 200 and "Keine Daten." in page.text
