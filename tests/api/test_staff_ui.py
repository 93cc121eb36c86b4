"""The staff UI over HTTP: login, sessions, CSRF, roles, purpose separation, escaping, audit.

The browser run (tests/e2e/test_staff_browser.py) shows the same pages in Chromium against a
running hub; these tests pin the rules one by one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.app import create_app
from hub.audit.models import AuditRecord
from hub.db import unit_of_work, utcnow
from hub.referrals.models import Referral, StaffNote
from hub.timeline.models import TimelineEntry
from hub.web.accounts import add_staff
from tests.staffweb import PASSWORD, csrf_of, staff_client
from tests.staffweb import log_in as login

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def staff_hub(hub_and_partners: Any) -> Any:
    hub, _ = hub_and_partners
    with unit_of_work(hub.session_factory) as session:
        add_staff(
            session,
            email="res@duisburg.de",
            role="caseworker",
            purposes=["residence"],
            password=PASSWORD,
        )
        add_staff(
            session,
            email="coun@duisburg.de",
            role="caseworker",
            purposes=["counselling"],
            password=PASSWORD,
        )
        add_staff(session, email="dpo@duisburg.de", role="dpo", purposes=[], password=PASSWORD)
    return hub


@pytest.fixture
def browser(staff_hub: Any) -> Iterator[TestClient]:
    with staff_client(staff_hub) as c:
        yield c


def refer_student(client: TestClient, partners: Any, *, given_name: str = "Wei") -> dict[str, Any]:
    """A referral from UDE to the Amt through the partner API, with a Matrikelnummer."""
    body = {
        "type": "residence.student",
        "performer": "amt",
        "person": {
            "given_name": given_name,
            "family_name": "Li",
            "partner_reference": "MATR-4711",
        },
        "payload": {"programme": XSS},
    }
    r = client.post("/v1/referrals", json=body, headers=partners.headers(client, "ude"))
    assert r.status_code == 202, r.text
    return dict(r.json())


def add_entry(hub: Any, person_id: str, referral_id: str | None, purpose: str, source: str) -> None:
    now = utcnow()
    with unit_of_work(hub.session_factory) as session:
        session.add(
            TimelineEntry(
                event_id=str(uuid.uuid4()),
                person_id=person_id,
                referral_id=referral_id,
                referral_type="residence.student" if purpose == "residence" else None,
                source_partner=source,
                event_type="de.duisburg.talenthub.referral.requested.v1",
                status="requested",
                purpose=purpose,
                legal_basis="§ 16b AufenthG",
                occurred_at=now,
                recorded_at=now,
            )
        )


def test_pages_need_a_login(browser: TestClient) -> None:
    r = browser.get("/staff/search?q=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/login?next=/staff/search%3Fq%3Dx"
    assert browser.get("/", follow_redirects=False).headers["location"] == "/staff/"


def test_login_sets_a_fresh_secure_http_only_session(browser: TestClient) -> None:
    first = login(browser, "res@duisburg.de")
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "hub_staff=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=strict" in cookie
    first_id = browser.cookies.get("hub_staff")
    second = login(browser, "res@duisburg.de")
    assert second.status_code == 303
    assert browser.cookies.get("hub_staff") not in (None, first_id), "session id changes"
    # The old session no longer works once replaced.
    browser.cookies.set("hub_staff", first_id or "", domain="testserver.local", path="/staff")
    old = TestClient(browser.app, base_url="https://testserver")
    old.cookies.set("hub_staff", first_id or "", path="/staff")
    assert old.get("/staff/search", follow_redirects=False).status_code == 303


def test_wrong_password_and_missing_csrf_are_refused(browser: TestClient) -> None:
    assert login(browser, "res@duisburg.de", "not the password").status_code == 401
    assert login(browser, "nobody@duisburg.de").status_code == 401
    r = browser.post(
        "/staff/login",
        data={"email": "res@duisburg.de", "password": PASSWORD, "csrf_token": "forged"},
    )
    assert r.status_code == 403
    assert "hub_staff" not in browser.cookies


def test_five_failures_lock_the_account(browser: TestClient) -> None:
    for _ in range(5):
        assert login(browser, "coun@duisburg.de", "wrong password!").status_code == 401
    assert login(browser, "coun@duisburg.de").status_code == 401, "locked even with the password"


def test_forms_without_the_csrf_token_are_refused(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    referral = refer_student(browser, partners)
    login(browser, "res@duisburg.de")
    r = browser.post(f"/staff/referrals/{referral['id']}/notes", data={"text": "hello"})
    assert r.status_code == 403
    with staff_hub.session_factory() as session:
        assert session.scalars(select(StaffNote)).first() is None


def test_a_role_without_access_sees_a_403_page(browser: TestClient) -> None:
    login(browser, "dpo@duisburg.de")
    r = browser.get("/staff/search")
    assert r.status_code == 403
    assert "Keine Berechtigung" in r.text and "Datenschutzbeauftragte" in r.text


def test_find_by_partner_reference_and_see_the_timeline_escaped(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    referral = refer_student(browser, partners, given_name=XSS[:100])
    person = referral["person_id"]
    add_entry(staff_hub, person, referral["id"], "residence", "ude")
    add_entry(staff_hub, person, None, "counselling", "amt")
    login(browser, "res@duisburg.de")

    found = browser.get("/staff/search", params={"q": "MATR-4711"})
    assert found.status_code == 200 and person in found.text

    page = browser.get(f"/staff/people/{person}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    assert "Aufenthaltsrecht" in page.text and "Beratung</dd>" not in page.text

    detail = browser.get(f"/staff/referrals/{referral['id']}")
    assert detail.status_code == 200
    assert "<img src=x" not in detail.text and "&lt;img src=x" in detail.text

    english = browser.get(f"/staff/lang/en?next=/staff/people/{person}")
    assert english.status_code == 200 and "Residence law" in english.text

    with staff_hub.session_factory() as session:
        actions = [
            (a.actor, a.action, a.person_id)
            for a in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
            if a.actor_type == "staff"
        ]
    assert ("res@duisburg.de", "staff.timeline_viewed", person) in actions
    assert ("res@duisburg.de", "staff.referral_viewed", person) in actions


def test_counselling_staff_do_not_find_a_residence_only_person(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    referral = refer_student(browser, partners)
    add_entry(staff_hub, referral["person_id"], referral["id"], "residence", "ude")
    login(browser, "coun@duisburg.de")
    assert referral["person_id"] not in browser.get("/staff/search?q=MATR-4711").text
    assert browser.get(f"/staff/people/{referral['person_id']}").status_code == 404
    assert browser.get(f"/staff/referrals/{referral['id']}").status_code == 404


def test_staff_add_a_note_and_cancel_their_own_referral(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    with unit_of_work(staff_hub.session_factory) as session:
        add_staff(
            session,
            email="both@duisburg.de",
            role="caseworker",
            purposes=["residence", "education"],
            password=PASSWORD,
        )
    referral = refer_student(browser, partners)
    person = referral["person_id"]
    add_entry(staff_hub, person, referral["id"], "residence", "ude")
    login(browser, "both@duisburg.de")

    # UDE requested this one: the Talent Center may annotate it, not cancel it.
    page = browser.get(f"/staff/referrals/{referral['id']}")
    token = csrf_of(page.text)
    assert "Überweisung zurückziehen" not in page.text
    r = browser.post(
        f"/staff/referrals/{referral['id']}/notes",
        data={"text": "Termin am Montag " + XSS, "csrf_token": token},
    )
    assert r.status_code == 200 and "Termin am Montag &lt;script&gt;" in r.text
    with staff_hub.session_factory() as session:
        assert "Termin" not in session.scalars(select(StaffNote)).one().text, "sealed"
    refused = browser.post(f"/staff/referrals/{referral['id']}/cancel", data={"csrf_token": token})
    assert refused.status_code == 409, refused.text
    with staff_hub.session_factory() as session:
        assert session.get(Referral, referral["id"]).status == "requested"

    # A referral of the Talent Center's own, with the same checks as the partner API.
    form = browser.get(
        f"/staff/people/{person}/referrals/new?type=university.enrolment-confirmation"
    )
    assert form.status_code == 200 and 'name="payload.semester"' in form.text
    bad = browser.post(
        f"/staff/people/{person}/referrals",
        data={
            "csrf_token": token,
            "type": "university.enrolment-confirmation",
            "performer": "ude",
            "payload.semester": "summer",
        },
    )
    assert bad.status_code == 422 and "semester" in bad.text
    created = browser.post(
        f"/staff/people/{person}/referrals",
        data={
            "csrf_token": token,
            "type": "university.enrolment-confirmation",
            "performer": "ude",
            "payload.semester": "2026W",
            "payload.programme": "Physik",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    rid = created.headers["location"].split("/")[-1].split("?")[0]
    detail = browser.get(f"/staff/referrals/{rid}")
    assert "Überweisung zurückziehen" in detail.text
    cancelled = browser.post(
        f"/staff/referrals/{rid}/cancel",
        data={"csrf_token": token, "reason": "withdrawn-by-client"},
    )
    assert cancelled.status_code == 200 and "zurückgezogen" in cancelled.text
    with staff_hub.session_factory() as session:
        mine = session.get(Referral, rid)
        assert mine.requester_id == "amt" and mine.status == "cancelled"


def test_login_attempts_from_one_address_are_throttled(browser: TestClient) -> None:
    codes = [
        login(browser, f"user{i}@duisburg.de", "wrong password!").status_code for i in range(12)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]


def test_unknown_staff_pages_are_html_and_the_api_stays_problem_json(browser: TestClient) -> None:
    login(browser, "res@duisburg.de")
    page = browser.get("/staff/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    api = browser.get("/v1/no-such-resource")
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")


def test_hub_staff_add_from_the_command_line(database_url: str, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from hub.cli import main
    from hub.web.models import StaffAccount

    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "staff",
            "add",
            "A.Yilmaz@Stadt-Duisburg.de",
            "--role",
            "caseworker",
            "--purpose",
            "residence",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    short = runner.invoke(
        main,
        [
            "staff",
            "add",
            "b@stadt-duisburg.de",
            "--role",
            "caseworker",
            "--purpose",
            "residence",
            "--password-stdin",
        ],
        input="short\n",
        env=env,
    )
    assert short.exit_code != 0 and "12 characters" in short.output
    no_purpose = runner.invoke(
        main,
        ["staff", "add", "c@stadt-duisburg.de", "--role", "team_lead", "--no-password"],
        env=env,
    )
    assert no_purpose.exit_code != 0 and "purpose domain" in no_purpose.output
    city = runner.invoke(
        main, ["staff", "add", "d@stadt-duisburg.de", "--role", "dpo", "--no-password"], env=env
    )
    assert city.exit_code == 0, city.output
    from hub.bootstrap import bootstrap
    from hub.settings import Settings

    hub = bootstrap(Settings(database_url=database_url, data_dir=tmp_path))
    with hub.session_factory() as session:
        accounts = {a.email: a for a in session.scalars(select(StaffAccount))}
    hub.engine.dispose()
    assert set(accounts) == {"a.yilmaz@stadt-duisburg.de", "d@stadt-duisburg.de"}
    assert accounts["a.yilmaz@stadt-duisburg.de"].password_hash.startswith("scrypt$")
    assert accounts["d@stadt-duisburg.de"].password_hash is None


def test_a_long_timeline_says_it_is_cut_and_shows_more_on_request(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    referral = refer_student(browser, partners)
    person = referral["person_id"]
    start = utcnow() - timedelta(days=400)
    with unit_of_work(staff_hub.session_factory) as session:
        session.add_all(
            TimelineEntry(
                event_id=str(uuid.uuid4()),
                person_id=person,
                referral_id=referral["id"],
                referral_type="residence.student",
                source_partner="ude",
                event_type="de.duisburg.talenthub.referral.status-changed.v1",
                status="in-progress",
                business_status=f"STEP_{i:04d}",
                purpose="residence",
                occurred_at=start + timedelta(hours=i),
                recorded_at=start + timedelta(hours=i),
            )
            for i in range(1_001)
        )
    login(browser, "res@duisburg.de")

    def shown(path: str) -> list[str]:
        page = browser.get(path)
        assert page.status_code == 200, page.text
        return re.findall(r">STEP_(\d{4})<", page.text)

    first = browser.get(f"/staff/people/{person}")
    steps = re.findall(r">STEP_(\d{4})<", first.text)
    assert len(steps) == 500 and steps[0] == "1000"  # newest first
    assert "Angezeigt werden die ersten 500 Einträge in dieser Reihenfolge." in first.text
    more = re.search(r'href="(/staff/people/[^"]+shown=1000)"', first.text)
    assert more is not None, "a link that shows 500 more"

    second = browser.get(more.group(1).replace("&amp;", "&"))
    assert len(re.findall(r">STEP_(\d{4})<", second.text)) == 1_000
    assert f"/staff/people/{person}/entries?order=desc&amp;shown=1000" in second.text  # polls alike
    assert "shown=1500" in second.text

    everything = shown(f"/staff/people/{person}?shown=1500")
    assert (
        len(everything) == 1_001
        and "Weitere anzeigen" not in browser.get(f"/staff/people/{person}?shown=1500").text
    )
    assert len(shown(f"/staff/people/{person}/entries?order=asc&shown=1000")) == 1_000
    assert shown(f"/staff/people/{person}/entries?order=asc")[0] == "0000"  # oldest first
    assert len(shown(f"/staff/people/{person}?shown=99999")) == 1_001  # capped, not refused


def test_security_headers_go_on_staff_pages_only_and_hsts_only_over_https(
    staff_hub: Any,
) -> None:
    app = create_app(staff_hub, kafka_check=lambda: True)
    with TestClient(app, base_url="https://testserver") as https:
        page = https.get("/staff/login")
        static = https.get("/staff/static/nothing-here.css")
        api = https.get("/v1/referrals")
    with TestClient(app, base_url="http://testserver") as http:
        plain = http.get("/staff/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" in page.headers
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in plain.headers
    assert plain.headers["X-Frame-Options"] == "DENY"
    assert static.headers["X-Content-Type-Options"] == "nosniff"
    assert static.headers.get("Cache-Control") != "no-store"
    assert "Content-Security-Policy" not in api.headers
