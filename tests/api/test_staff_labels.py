"""Every staff page of a populated hub shows labels, not the catalogue's codes.

The visible text of each page (in German and in English) must not contain a type id, a
lifecycle status, a business status, a clock name, a payload field name, a partner id or a
partner kind wherever the catalogue has a label that differs from the code. A code may stand
in a ``title`` tooltip or in an explicit ``<code>`` element, for calls with partners.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.db import unit_of_work
from hub.partners.models import Partner
from hub.web.accounts import add_staff
from schemas.catalogue import load_catalogue
from schemas.labels import label
from schemas.lifecycle import Status
from tests.hubtest import Partners
from tests.staffweb import PASSWORD, log_in, staff_client

PERSON = {"given_name": "Mina", "family_name": "Karimi", "partner_reference": "MATR-0815"}
ALL_PURPOSES = ["residence", "counselling", "education", "employment", "recognition"]
#: Moments written the machine's way: ISO dates, seconds or microseconds.
RAW_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{2}:\d{2}:\d{2}")


class VisibleText(HTMLParser):
    """The text a reader sees, without <code> elements, scripts and styles."""

    HIDDEN = frozenset({"code", "script", "style"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        for name, value in attrs:
            if name in ("aria-label", "placeholder", "alt") and value and not self.hidden:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


def codes_with_labels(lang: str, partner_ids: list[str]) -> dict[str, str]:
    """Every catalogue code whose label in ``lang`` is not the code itself -> its label key."""
    catalogue = load_catalogue()
    keys = {f"type.{t}" for t in catalogue.types}
    keys |= {f"status.{s.value}" for s in Status}
    for rtype in catalogue.types.values():
        keys |= {f"business.{c}" for c in rtype.business_statuses}
        keys |= {f"field.{f}" for f in rtype.payload}
        keys |= {f"clock.{c.name}" for c in rtype.clocks}
    keys |= {f"kind.{k}" for k in catalogue.partner_kinds}
    found = {key.split(".", 1)[1]: key for key in keys}
    found = {code: key for code, key in found.items() if label(lang, key) != code}
    return found | {p: f"partner.{p}" for p in partner_ids}


def leaks(text: str, codes: dict[str, str], lang: str = "de") -> list[str]:
    """The codes standing in ``text`` as whole tokens (not part of a longer id or word),
    outside the labels themselves ("programme" in "Study programme" is the label)."""
    labelled = [label(lang, key) for key in codes.values() if not key.startswith("partner.")]
    for words in sorted(labelled, key=len, reverse=True):
        text = text.replace(words, " ")
    return sorted(
        code for code in codes if re.search(rf"(?<![\w.\-]){re.escape(code)}(?![\w\-]|\.\w)", text)
    )


@pytest.fixture
def populated(
    hub_and_partners: tuple[Any, Partners],
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    hub, partners = hub_and_partners
    with unit_of_work(hub.session_factory) as session:
        for email, role in (
            ("cw@duisburg.de", "caseworker"),
            ("lead@duisburg.de", "team_lead"),
            ("admin@duisburg.de", "admin"),
            ("dpo@duisburg.de", "dpo"),
        ):
            add_staff(session, email=email, role=role, purposes=ALL_PURPOSES, password=PASSWORD)
    with staff_client(hub) as client:
        student = client.post(
            "/v1/referrals",
            json={
                "type": "residence.student",
                "performer": "amt",
                "person": PERSON,
                "payload": {"programme": "Physik", "admission_date": "2026-10-01"},
            },
            headers=partners.headers(client, "ude"),
        )
        assert student.status_code == 202, student.text
        rid, pid = student.json()["id"], student.json()["person_id"]
        amt = partners.headers(client, "amt")
        for step in (
            {"status": "accepted"},
            {"status": "in-progress", "business_status": "FIKTIONSBESCHEINIGUNG_ISSUED"},
            {"status": "completed", "business_status": "PERMIT_GRANTED"},
        ):
            r = client.post(f"/v1/referrals/{rid}/status", json=step, headers=amt)
            assert r.status_code == 200, r.text
        recognition = client.post(
            "/v1/referrals",
            json={
                "type": "recognition.assessment",
                "performer": "ihk-fosa",
                "person": {"id": pid},
                "payload": {"reference_occupation": "Elektroniker/in", "accelerated": True},
            },
            headers=amt,
        )
        assert recognition.status_code == 202, recognition.text
        fosa = partners.headers(client, "ihk-fosa")
        r = client.post(
            f"/v1/referrals/{recognition.json()['id']}/status",
            json={"status": "received", "business_status": "APPLICATION_RECEIVED"},
            headers=fosa,
        )
        assert r.status_code == 200, r.text
        yield client, {"person": pid, "student": rid, "recognition": recognition.json()["id"]}


PAGES = (
    ("cw@duisburg.de", "/staff/people/{person}"),
    ("cw@duisburg.de", "/staff/referrals/{student}"),
    ("cw@duisburg.de", "/staff/referrals/{recognition}"),
    ("cw@duisburg.de", "/staff/people/{person}/referrals/new?type=residence.student"),
    ("cw@duisburg.de", "/staff/dashboard"),
    ("lead@duisburg.de", "/staff/deliveries"),
    ("admin@duisburg.de", "/staff/partners"),
    ("dpo@duisburg.de", "/staff/audit"),
)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_no_staff_page_shows_a_catalogue_code_where_a_label_exists(
    populated: tuple[TestClient, dict[str, str]], hub_and_partners: Any, lang: str
) -> None:
    client, ids = populated
    with hub_and_partners[0].session_factory() as session:
        partner_ids = list(session.scalars(select(Partner.id)))
    codes = codes_with_labels(lang, partner_ids)
    found: dict[str, list[str]] = {}
    for email, path in PAGES:
        client.cookies.clear()
        assert log_in(client, email).status_code == 303
        client.cookies.set("hub_lang", lang)
        page = client.get(path.format(**ids))
        assert page.status_code == 200, (path, page.text)
        text = visible(page.text)
        bad = leaks(text, codes, lang) + RAW_TIME.findall(text)
        if bad:
            found[path] = bad
    assert found == {}


def test_the_check_sees_a_code_outside_code_and_title() -> None:
    codes = codes_with_labels("de", ["ude"])
    shown = visible(
        '<p title="PERMIT_GRANTED">Aufenthaltserlaubnis erteilt <code>residence.student</code>'
        "</p><p>von ude, Stand PERMIT_GRANTED, 2026-12-03T14:05:00</p>"
    )
    assert leaks(shown, codes) == ["PERMIT_GRANTED", "ude"]
    assert RAW_TIME.findall(shown) == ["2026-12-03T14:05"]
