"""Every staff page on a phone (390x844) and a desktop (1280x800), for each role that opens it.

No page scrolls sideways, axe-core (tests/contracts/node_modules/axe-core) finds no
"serious" or "critical" violation, and no page shows a catalogue code or partner id where a
label exists (the check of tests/api/test_staff_labels.py, on what the browser rendered).
Search finds the client by name, the type picker says what it does, the audit trail reads
as sentences. A client with a long history shows how compact the
person page's timeline is: its height is printed (run with ``-s`` to read it).

``HUB_SCREENSHOTS=docs/screenshots`` keeps the person page on a phone (person-mobile.png).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db import unit_of_work
from hub.web.accounts import add_staff
from tests.api.test_staff_labels import codes_with_labels, leaks, visible
from tests.e2e.test_staff_browser import (
    CHROMIUM,
    EMAIL,
    PASSWORD,
    Gateway,
    PartnerApi,
    shoot,
    stack,
)
from tests.integration.conftest import Running
from tests.integration.push import Sim

pytestmark = pytest.mark.integration

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

__all__ = ["stack"]

AXE = Path(__file__).parents[1] / "contracts" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = ({"width": 390, "height": 844}, {"width": 1280, "height": 800})
PURPOSES = ["residence", "recognition", "employment"]
#: The elements that reach past the right edge and have no such child: the ones to fix.
WIDEST = """() => Array.from(document.querySelectorAll("body *"))
  .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
  .filter(e => !Array.from(e.children).some(c => c.getBoundingClientRect().right > innerWidth + 1))
  .slice(0, 4).map(e => e.tagName.toLowerCase() + "." + e.className).join(", ")"""


def journey(api: PartnerApi) -> dict[str, str]:
    """One client across four partners: a student permit to the end, a recognition on hold,
    an integration referral to the Jobcenter (pushed, so its deliveries show)."""
    student = api.refer(
        "ude",
        {
            "type": "residence.student",
            "performer": "amt",
            "person": {
                "given_name": "Chen",
                "family_name": "Yutong-Abdelrahman-Nakamura",
                "partner_reference": "UDE-2027-0000123456789",
            },
            "payload": {"programme": "Maschinenbau M.Sc.", "semester": "2027W"},
        },
    )
    person = student["person_id"]
    for step in (
        {"status": "received"},
        {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"},
        {"status": "in-progress", "business_status": "APPLICATION_RECEIVED"},
        {"status": "in-progress", "business_status": "FIKTIONSBESCHEINIGUNG_ISSUED"},
        {"status": "completed", "business_status": "PERMIT_GRANTED", "outcome": "granted"},
    ):
        api.status("amt", student["id"], step)
    recognition = api.refer(
        "amt",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"id": person},
            "payload": {"reference_occupation": "Elektroniker/in"},
        },
    )
    for step in (
        {"status": "received", "business_status": "APPLICATION_RECEIVED"},
        {"status": "accepted", "business_status": "RECEIPT_CONFIRMED"},
        {
            "status": "on-hold",
            "business_status": "DOCUMENTS_REQUESTED",
            "reason": "awaiting-client-documents",
        },
    ):
        api.status("ihk-fosa", recognition["id"], step)
    integration = api.refer(
        "amt",
        {
            "type": "jobcenter.integration",
            "performer": "jobcenter",
            "person": {"id": person},
            "payload": {"integration_course_needed": True},
        },
    )
    api.status("jobcenter", integration["id"], {"status": "accepted"})
    return {"person": person, "referral": recognition["id"]}


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def log_in(browser: Browser, url: str, email: str) -> Page:
    # axe is injected as an inline script, which the pages' CSP would refuse.
    context = browser.new_context(locale="de-DE", viewport=VIEWPORTS[1], bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{url}/staff/login")
    if email:
        page.get_by_label("E-Mail-Adresse").fill(email)
        page.get_by_label("Passwort").fill(PASSWORD)
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
    return page


def faults(page: Page, codes: dict[str, str]) -> list[str]:
    """What is wrong with the open page: codes where labels belong; at each viewport,
    sideways scrolling and axe findings."""
    found = [f"{page.url} shows the code {c!r}" for c in leaks(visible(page.content()), codes)]
    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        wide = page.evaluate("document.documentElement.scrollWidth")
        if wide > viewport["width"]:
            found.append(
                f"{page.url} at {viewport['width']} px is {wide} px wide: {page.evaluate(WIDEST)}"
            )
        if page.evaluate("typeof axe") == "undefined":
            page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        assert result["testEngine"]["name"] == "axe-core", result
        for v in result["violations"]:
            if v["impact"] in ("serious", "critical"):
                nodes = "; ".join(n["html"][:120] for n in v["nodes"][:3])
                found.append(f"{page.url} at {viewport['width']} px: {v['id']} ({nodes})")
    return found


def test_every_staff_page_fits_a_phone_and_passes_axe(
    stack: tuple[Running, Gateway, dict[str, Sim]], browser: Browser, tmp_path: Path
) -> None:
    assert AXE.exists(), "make tests/contracts/node_modules/.installed"
    running, gateway, _ = stack
    api = PartnerApi(running, gateway)
    client = journey(api)
    person, referral = client["person"], client["referral"]
    with unit_of_work(running.hub.session_factory) as session:
        for email, role in (
            ("sb@stadt-duisburg.de", "caseworker"),
            ("dsb@stadt-duisburg.de", "dpo"),
        ):
            add_staff(session, email=email, role=role, purposes=PURPOSES, password=PASSWORD)
        add_staff(
            session, email="it@stadt-duisburg.de", role="admin", purposes=[], password=PASSWORD
        )
    case_pages = [
        "/staff/search?q=Yutong",
        f"/staff/people/{person}",
        f"/staff/referrals/{referral}",
        f"/staff/people/{person}/referrals/new",
        "/staff/dashboard",
    ]
    pages = {
        "": ["/staff/login"],
        "sb@stadt-duisburg.de": case_pages,
        EMAIL: [*case_pages, "/staff/deliveries"],
        "dsb@stadt-duisburg.de": ["/staff/audit"],
        "it@stadt-duisburg.de": [
            "/staff/dashboard",
            "/staff/deliveries",
            "/staff/partners",
            "/staff/accounts",
            "/staff/audit",
        ],
    }

    # The timeline is complete once the Jobcenter's acceptance is on it.
    page = log_in(browser, gateway.url, EMAIL)
    page.goto(f"{gateway.url}/staff/people/{person}")
    entries = page.locator("#entries li.entry")
    expect(page.locator("#entries li.entry[data-source='jobcenter']")).not_to_have_count(
        0, timeout=60_000
    )
    expect(page.locator("#entries .sent")).not_to_have_count(0, timeout=60_000)
    high = page.locator("#entries").evaluate("e => e.getBoundingClientRect().height")
    lines = entries.count()
    print(f"\ntimeline: {lines} lines, {high:.0f} px high at 1280 px")
    shoot(page, tmp_path, "timeline")
    assert high <= lines * 60, "one short line per event (two where names are long)"
    expect(page.locator(".open-ref")).to_have_count(2)  # recognition on hold, integration
    page.set_viewport_size(VIEWPORTS[0])
    header = page.locator("header.top").evaluate("e => e.getBoundingClientRect().height")
    print(f"header at 390 px: {header:.0f} px")
    shoot_viewport(page, tmp_path, "person-mobile")
    assert header <= 80
    page.context.close()

    codes = codes_with_labels("de", sorted(running.partners.creds))
    shown = {  # path -> (where, what the caseworker or officer reads there)
        "/staff/search?q=Yutong": ("main", "Yutong-Abdelrahman-Nakamura"),  # found by a name
        f"/staff/people/{person}/referrals/new": ("main", "Art wählen"),
        "/staff/audit": ("td.sentence", "hat eine Überweisung"),
    }
    found: list[str] = []
    for email, paths in pages.items():
        page = log_in(browser, gateway.url, email)
        for path in paths:
            response = page.goto(f"{gateway.url}{path}")
            assert response is not None and response.ok, (email, path)
            if path in shown:
                where, words = shown[path]
                expect(page.locator(where).get_by_text(words).first).to_be_visible()
            found += faults(page, codes)
        page.context.close()
    assert not found, "\n".join(found)


def shoot_viewport(page: Page, tmp_path: Path, name: str) -> Path:
    """The visible part of the page only: a phone's screen, not the whole scroll."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    target = os.environ.get("HUB_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / path.name)
    return path
