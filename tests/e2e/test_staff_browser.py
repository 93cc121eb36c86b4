"""The staff UI in a real browser (Debian's Chromium driven by Playwright).

A hub with the embedded broker, relay, router, timeline, inbox and push delivery runs in this
process; the gateway is served over real HTTP on loopback. Partners act through the partner
API; a caseworker works in the browser: log in, find the client, watch the timeline fill from
three partners, read the dashboard, replay a dead letter, see an XSS payload escaped, log out.

``HUB_SCREENSHOTS=docs/screenshots`` keeps the screenshots (the README shows those).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hub.app import create_app
from hub.db import unit_of_work
from hub.kafka.embedded import free_port
from hub.web.accounts import add_staff
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
EMAIL = "teamlead@stadt-duisburg.de"
PASSWORD = "Ein langes Passwort 2026"
XSS = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
REFERENCE = "ES098765432"

if not Path(CHROMIUM).exists():  # pragma: no cover - .ci/run installs it
    pytest.skip("Debian's chromium package is not installed", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


class Gateway:
    """The gateway app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, running: Running) -> None:
        app = create_app(running.hub, kafka_check=lambda: True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Gateway:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=20)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class PartnerApi:
    """The partners' side: their systems call the API over HTTP with their own tokens."""

    def __init__(self, running: Running, gateway: Gateway) -> None:
        self.client = httpx.Client(base_url=gateway.url, timeout=10)
        self.partners = running.partners

    def post(self, partner: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, json=body, headers=self.partners.headers(self.client, partner))
        assert r.status_code in (200, 201, 202), r.text
        return dict(r.json())

    def refer(self, partner: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.post(partner, "/v1/referrals", body)

    def status(self, partner: str, referral_id: str, body: dict[str, Any]) -> None:
        self.post(partner, f"/v1/referrals/{referral_id}/status", body)


@pytest.fixture
def stack(running: Running) -> Iterator[tuple[Running, Gateway, dict[str, Sim]]]:
    sims = start_sims(running, ["jobcenter"])
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    start_delivery(running)
    with unit_of_work(running.hub.session_factory) as session:
        add_staff(
            session,
            email=EMAIL,
            role="team_lead",
            purposes=["residence", "recognition", "employment"],
            password=PASSWORD,
        )
    with Gateway(running) as gateway:
        yield running, gateway, sims
    for sim in sims.values():
        sim.server.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()


def shoot(page: Page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot; copied to HUB_SCREENSHOTS when that is set."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("HUB_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def test_caseworker_day_in_the_browser(
    stack: tuple[Running, Gateway, dict[str, Sim]], page: Page, tmp_path: Path
) -> None:
    running, gateway, sims = stack
    api = PartnerApi(running, gateway)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # UDE refers a student to the Amt (with a Matrikelnummer and an XSS payload).
    student = api.refer(
        "ude",
        {
            "type": "residence.student",
            "performer": "amt",
            "person": {
                "given_name": "Amina",
                "family_name": "Okafor",
                "partner_reference": REFERENCE,
            },
            "payload": {"programme": XSS, "semester": "2027S"},
        },
    )
    person = student["person_id"]
    api.status("amt", student["id"], {"status": "received"})
    recognition = api.refer(
        "amt",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"id": person},
            "payload": {"reference_occupation": "Elektroniker/in"},
        },
    )
    # The Jobcenter's system refuses the next delivery: it becomes a dead letter.
    httpx.post(f"{sims['jobcenter'].server.url}/_sim/mode", json={"mode": "reject400"})
    integration = api.refer(
        "amt",
        {
            "type": "jobcenter.integration",
            "performer": "jobcenter",
            "person": {"id": person},
            "payload": {"integration_course_needed": True},
        },
    )

    # Log in (any page leads to the login first).
    page.goto(f"{gateway.url}/staff/search")
    expect(page).to_have_url(f"{gateway.url}/staff/login?next=/staff/search")
    page.get_by_label("E-Mail-Adresse").fill(EMAIL)
    page.get_by_label("Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Klientin oder Klienten finden")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "hub_staff")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"

    # Find the client by the university's reference.
    page.get_by_label("Hub-Kennung oder Partner-Aktenzeichen").fill(REFERENCE)
    page.get_by_role("button", name="Suchen").click()
    page.get_by_role("link", name="Amina Okafor").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(person)

    # The timeline fills live from the stream; the chamber's answer arrives while it is open.
    def source(partner: str) -> Any:
        return page.locator(f"#entries li.entry[data-source='{partner}']")

    expect(source("ude")).not_to_have_count(0, timeout=60_000)
    expect(source("amt")).not_to_have_count(0, timeout=60_000)
    api.status("ihk-fosa", recognition["id"], {"status": "received"})
    expect(source("ihk-fosa")).not_to_have_count(0, timeout=60_000)
    shoot(page, tmp_path, "timeline")
    _accessible_by_keyboard_and_on_a_tablet(page)

    # The partner's markup is shown as text and never runs.
    page.get_by_role("link", name="Aufenthaltserlaubnis zum Studium").first.click()
    expect(page.locator(".payload")).to_contain_text("<script>window.pwned = 1</script>")
    assert page.evaluate("window.pwned") is None and dialogs == []

    # The backlog dashboard and its figures.
    page.get_by_role("link", name="Rückstände").click()
    expect(page.locator("#chart-open")).to_be_visible()
    figures = page.request.get(f"{gateway.url}/staff/dashboard.json")
    assert figures.ok
    data = figures.json()
    open_counts = {p: {s: n for s, n in by.items() if n} for p, by in data["open"].items()}
    assert open_counts == {
        "amt": {"received": 1},
        "ihk-fosa": {"received": 1},
        "jobcenter": {"requested": 1},
    }, data
    assert data["throughput"][-1]["created"] == 3
    bar = page.locator("#chart-open [data-row='jobcenter'][data-value]")
    assert [int(v) for v in bar.evaluate_all("els => els.map(e => e.dataset.value)")] == [1]
    shoot(page, tmp_path, "dashboard")

    # The dead letter, replayed once the Jobcenter accepts again.
    page.get_by_role("link", name="Zustellungen").click()
    row = page.locator("tbody tr", has=page.get_by_role("button", name="Erneut senden"))
    row = row.filter(has_text="jobcenter")

    def letter_listed() -> bool:
        """the Jobcenter's dead letter is listed with a replay button"""
        if row.count() == 0:
            page.reload()
        return row.count() == 1

    wait_for(letter_listed, timeout=60, interval=1)
    shoot(page, tmp_path, "deliveries")
    httpx.post(f"{sims['jobcenter'].server.url}/_sim/mode", json={"mode": "ok"})
    row.get_by_role("button").click()
    expect(page.get_by_role("status")).to_be_visible()

    def delivered() -> bool:
        """the Jobcenter received the replayed referral"""
        return any(
            d.referral_id == integration["id"] for d in sims["jobcenter"].received().values()
        )

    wait_for(delivered, timeout=60)

    # Log out: the session is gone.
    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("heading", name="Anmeldung")).to_be_visible()
    page.goto(f"{gateway.url}/staff/people/{person}")
    expect(page).to_have_url(f"{gateway.url}/staff/login?next=/staff/people/{person}")


def _accessible_by_keyboard_and_on_a_tablet(page: Page) -> None:
    """Every form field has a name; the skip link comes first; no sideways scrolling on a tablet."""
    fields = page.locator("input:not([type=hidden]), select, textarea")
    for i in range(fields.count()):
        field = fields.nth(i)
        label = field.evaluate(
            "el => el.labels && el.labels.length ? el.labels[0].textContent : ''"
        )
        assert label.strip(), field.evaluate("el => el.outerHTML")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
