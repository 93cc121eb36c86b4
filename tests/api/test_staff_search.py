"""Staff find clients by name and birth date, through a blind index that holds no name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.audit.models import AuditRecord
from hub.db import unit_of_work
from hub.people.models import PersonIndexEntry
from hub.privacy.service import erase_person
from hub.web.accounts import add_staff
from tests.staffweb import PASSWORD, staff_client
from tests.staffweb import log_in as login


@pytest.fixture
def staff_hub(hub_and_partners: Any) -> Any:
    hub, _ = hub_and_partners
    with unit_of_work(hub.session_factory) as session:
        for email, purposes in (
            ("res@duisburg.de", ["residence"]),
            ("coun@duisburg.de", ["counselling"]),
        ):
            add_staff(session, email=email, role="caseworker", purposes=purposes, password=PASSWORD)
    return hub


@pytest.fixture
def browser(staff_hub: Any) -> Iterator[TestClient]:
    with staff_client(staff_hub) as c:
        yield c


def refer(client: TestClient, partners: Any, given: str, family: str, **person: str) -> str:
    """A student referral from UDE to the Amt (residence law); the person's hub id."""
    body = {
        "type": "residence.student",
        "performer": "amt",
        "person": {"given_name": given, "family_name": family, **person},
        "payload": {"programme": "Maschinenbau"},
    }
    r = client.post("/v1/referrals", json=body, headers=partners.headers(client, "ude"))
    assert r.status_code == 202, r.text
    return str(r.json()["person_id"])


def hits(browser: TestClient, query: str) -> list[str]:
    """The person ids the search page links to, in order."""
    page = browser.get("/staff/search", params={"q": query})
    assert page.status_code == 200
    return [part.split('"', 1)[0] for part in page.text.split('href="/staff/people/')[1:]]


def test_a_hit_shows_name_birth_date_partners_and_open_referrals(
    browser: TestClient, partners: Any
) -> None:
    olena = refer(browser, partners, "Олена", "Шевченко", birth_date="1990-04-12")
    login(browser, "res@duisburg.de")
    page = browser.get("/staff/search", params={"q": "Shevchenko"})
    assert olena in page.text
    assert "Олена Шевченко" in page.text and "12.04.1990" in page.text
    assert "Universität Duisburg-Essen" in page.text
    assert "Aufenthaltserlaubnis zum Studium" in page.text and "angefragt" in page.text


@pytest.mark.parametrize(
    ("given", "family", "queries"),
    [
        ("Олена", "Шевченко", ["Olena Shevchenko", "shevchenko", "ОЛЕНА"]),
        ("Łucja", "Öztürk", ["lucja ozturk", "Oeztuerk"]),
        ("Hans-Peter", "Müller", ["Mueller", "Muller", "peter müller", "Hans"]),
        ("Wei", "Li", ["Wei Li", "li wei"]),
    ],
)
def test_spellings_of_a_name_find_the_person(
    browser: TestClient, partners: Any, given: str, family: str, queries: list[str]
) -> None:
    person = refer(browser, partners, given, family)
    login(browser, "res@duisburg.de")
    for query in queries:
        assert hits(browser, query) == [person], query
    assert hits(browser, f"{given} Schneider") == []  # every token must match


def test_the_birth_date_narrows_and_exact_names_rank_before_similar_ones(
    browser: TestClient, partners: Any
) -> None:
    meier = refer(browser, partners, "Anna", "Meier", birth_date="1990-04-12")
    mayer = refer(browser, partners, "Berta", "Mayer", birth_date="1985-01-30")
    login(browser, "res@duisburg.de")
    assert hits(browser, "Meier") == [meier, mayer]
    assert hits(browser, "Mayer") == [mayer, meier]
    assert hits(browser, "Maier 12.04.1990") == [meier]
    assert hits(browser, "mayer 1985-01-30") == [mayer]
    assert hits(browser, "Meier 13.04.1990") == []


def test_references_are_found_in_any_case(browser: TestClient, partners: Any) -> None:
    person = refer(browser, partners, "Ana", "Silva", partner_reference="ES012345601")
    login(browser, "res@duisburg.de")
    assert hits(browser, "es012345601") == [person]
    assert hits(browser, " Es012345601 ") == [person]


def test_people_outside_the_purpose_domains_are_not_found(
    browser: TestClient, partners: Any
) -> None:
    refer(browser, partners, "Olena", "Shevchenko")
    login(browser, "coun@duisburg.de")
    assert hits(browser, "Shevchenko") == []


def test_the_audit_trail_records_the_search_and_the_hits_but_no_name(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    person = refer(browser, partners, "Oluwaseun", "Adeyemi", birth_date="1997-07-13")
    login(browser, "res@duisburg.de")
    assert hits(browser, "Adeyemi 13.07.1997") == [person]
    with staff_hub.session_factory() as session:
        records = [r for r in session.scalars(select(AuditRecord)) if r.actor == "res@duisburg.de"]
    searches = [r for r in records if r.action == "staff.person_search"]
    assert [r.details for r in searches] == [{"kind": "name+birth_date"}]
    seen = [(r.action, r.person_id) for r in records]
    assert ("staff.search_hit_viewed", person) in seen
    text = json.dumps([(r.action, r.details) for r in records]).lower()
    assert "adeyemi" not in text and "1997" not in text


def test_an_erased_person_is_not_found_and_leaves_no_index_rows(
    browser: TestClient, staff_hub: Any, partners: Any
) -> None:
    person = refer(browser, partners, "Olena", "Shevchenko", birth_date="1990-04-12")
    with staff_hub.session_factory() as session:
        assert session.scalars(
            select(PersonIndexEntry).where(PersonIndexEntry.person_id == person)
        ).all()
    with unit_of_work(staff_hub.session_factory) as session:
        erase_person(session, person_id=person, reason="request-art-17", by="staff:dsb", topic="t")
    login(browser, "res@duisburg.de")
    assert hits(browser, "Shevchenko") == []
    with staff_hub.session_factory() as session:
        left = session.scalars(
            select(PersonIndexEntry).where(PersonIndexEntry.person_id == person)
        ).all()
    assert left == []


def test_the_index_holds_digests_only(browser: TestClient, staff_hub: Any, partners: Any) -> None:
    person = refer(browser, partners, "Wei", "Li", birth_date="1990-04-12")
    with staff_hub.session_factory() as session:
        rows = session.scalars(
            select(PersonIndexEntry).where(PersonIndexEntry.person_id == person)
        ).all()
    assert sorted(r.kind for r in rows) == ["birth_date", "phonetic", "phonetic", "token", "token"]
    assert all(len(r.digest) == 32 for r in rows)
