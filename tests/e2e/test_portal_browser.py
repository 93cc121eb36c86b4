"""Mein Verfahren in a real browser (Debian's Chromium) on a 320 px phone.

The stack of tests/e2e/test_staff_browser.py runs, with the audit sequencer as ``hub up``
runs it. The university refers a student to the Amt, which books an appointment and asks
for documents (with a note the client must never see); the Amt's system reads the
referral and a team lead opens the client's page. A caseworker's code opens the portal:
the client signs in with it and the birth date, reads the case in plain words, sees who
used the data and checks one entry's proof in the browser (Web Crypto: leaf hash, Merkle
path, Ed25519 checkpoint signature). Once in German, once in Arabic (right to left); a
tampered proof fails the check; without JavaScript the case still shows.

Every page visited fits 320 px without sideways scrolling, axe-core finds nothing serious
or critical (WCAG 2.1 A and AA), and HTML + CSS + JS stay under 100 KB: the weights are
printed (run with ``-s``). ``HUB_SCREENSHOTS=docs/screenshots`` keeps portal-de.png,
portal-ar.png (case pages) and portal-en-access.png (the access list in English), 390 px
wide.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.db import unit_of_work, utcnow
from hub.portal.invites import issue
from hub.runtime import start_sequencer
from tests.e2e.test_staff_browser import EMAIL, PASSWORD, Gateway, PartnerApi, shoot, stack
from tests.e2e.test_staff_pages_fit import AXE, WIDEST, browser
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim

pytestmark = pytest.mark.integration

from playwright.sync_api import Browser, Page, Response, Route, ViewportSize, expect  # noqa: E402

__all__ = ["browser", "stack"]

ROOT = Path(__file__).resolve().parents[2]
PORTAL = "/mein-verfahren"
PHONE: ViewportSize = {"width": 320, "height": 640}
SHOT_WIDTH: ViewportSize = {"width": 390, "height": 844}
BUDGET = 100 * 1024  # bytes of HTML + CSS + JS per page
BORN = "1998-11-23"
NOTE = "Intern: Akte 4711, Mietvertrag fehlt"
SECRETS = ("Akte 4711", "Mietvertrag", "UDE-MV-2027-0042")
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def words(language: str) -> dict[str, str]:
    """The portal's fixed texts and the catalogue's plain texts, as translators wrote them."""
    found: dict[str, str] = {}
    for path in (
        ROOT / "schemas" / "catalogue" / "plain" / f"{language}.yaml",
        ROOT / "hub" / "portal" / "texts" / f"{language}.yaml",
    ):
        found.update({str(k): str(v) for k, v in yaml.safe_load(path.read_text("utf-8")).items()})
    return found


def before_placeholder(text: str) -> str:
    """The words of a text up to its first ``{placeholder}``."""
    return text.split("{")[0].strip()


class Visit:
    """One browser context on the portal, checking each page it opens at 320 px."""

    def __init__(self, browser: Browser, *, language: str, script: bool = True) -> None:
        # The pages' own CSP stays on (proof.js must work under it); axe is evaluated
        # through the DevTools protocol, which the CSP does not govern.
        self.context = browser.new_context(
            locale="de-DE", viewport=PHONE, java_script_enabled=script
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.language = language
        self.sizes: dict[str, int] = {}
        self.weights: list[tuple[str, str, int]] = []
        self.axe: list[str] = []
        self.page.on("response", self._keep_size)

    def _keep_size(self, response: Response) -> None:
        if response.request.resource_type in ("document", "stylesheet", "script") and (
            response.status == 200
        ):
            self.sizes[response.url] = len(response.body())

    def close(self) -> None:
        self.context.close()

    def check(self, name: str) -> list[str]:
        """What is wrong with the open page at 320 px; records its weight."""
        page = self.page
        found = []
        text = page.content()
        for secret in SECRETS:
            if secret in text:
                found.append(f"{name} ({self.language}) shows {secret!r}")
        if not page.evaluate("document.documentElement.scrollWidth <= innerWidth"):
            wide = page.evaluate("document.documentElement.scrollWidth")
            found.append(
                f"{name} ({self.language}) at 320 px is {wide} px wide: {page.evaluate(WIDEST)}"
            )
        if page.evaluate("typeof axe") == "undefined":
            page.evaluate(AXE.read_text("utf-8") + "\n;undefined")
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags},"
            " resultTypes: ['violations', 'passes']})",
            AXE_TAGS,
        )
        assert result["testEngine"]["name"] == "axe-core", result
        self.axe.append(
            f"{self.language} {name:<7} {len(result['passes'])} rules passed, violations: "
            + (", ".join(f"{v['id']} ({v['impact']})" for v in result["violations"]) or "none")
        )
        for v in result["violations"]:
            if v["impact"] in ("serious", "critical"):
                nodes = "; ".join(n["html"][:120] for n in v["nodes"][:3])
                found.append(f"{name} ({self.language}): axe {v['id']} ({nodes})")
        weight = self.weight()
        self.weights.append((self.language, name, weight))
        if weight > BUDGET:
            found.append(f"{name} ({self.language}) weighs {weight} bytes")
        return found

    def weight(self) -> int:
        """The bytes of the page's HTML and the stylesheets and scripts it loaded."""
        assets = self.page.evaluate(
            """() => [location.href, ...Array.from(
                document.querySelectorAll("link[rel=stylesheet][href], script[src]"),
                e => e.href || e.src)]"""
        )
        missing = [a for a in assets if a not in self.sizes]
        assert not missing, (missing, sorted(self.sizes))
        return sum(self.sizes[a] for a in assets)

    def sign_in(self, code: str, w: dict[str, str]) -> None:
        page = self.page
        page.get_by_label(w["start.code"], exact=True).fill(code)
        page.get_by_label(w["start.birth_date"], exact=True).fill(BORN)
        page.get_by_role("button", name=w["start.submit"]).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(w["case.title"])

    def open_access_list(self, w: dict[str, str]) -> None:
        """The access list, reloaded until the sequencer has signed its entries."""
        page = self.page
        page.get_by_role("link", name=w["nav.access"]).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(w["access.title"])
        links = page.get_by_role("link", name=w["access.proof_link"])

        def provable() -> bool:
            """the access list links a proof (the sequencer has signed a checkpoint)"""
            if links.count() >= 2:
                return True
            page.reload()
            return False

        wait_for(provable, timeout=20, interval=1)


def case_texts(w: dict[str, str]) -> list[str]:
    """What the case page says about documents requested by the Amt."""
    return [
        w["case.title"],
        before_placeholder(w["type.residence.student"]),
        w["business.DOCUMENTS_REQUESTED"],
        before_placeholder(w["todo.DOCUMENTS_REQUESTED"]),
        w["case.you"],
        w["case.todo"],
    ]


def shoot_390(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot 390 px wide (copied to HUB_SCREENSHOTS when set)."""
    page.set_viewport_size(SHOT_WIDTH)
    shoot(page, tmp_path, name)
    page.set_viewport_size(PHONE)


def tampered(route: Route) -> None:
    """The real proof with one hash of its path changed."""
    answer = route.fetch()
    proof: dict[str, Any] = answer.json()
    assert proof["proof"], "a path of at least one hash"
    first = proof["proof"][0]
    proof["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    route.fulfill(response=answer, json=proof)


@pytest.fixture
def case(stack: tuple[Running, Gateway, dict[str, Sim]], browser: Browser) -> Iterator[str]:
    """A student's referral with documents requested, read by the Amt and viewed by staff,
    under the running sequencer; the person's id."""
    running, gateway, _ = stack
    running.threads.append(start_sequencer(running.hub, running.stop))
    api = PartnerApi(running, gateway)
    referral = api.refer(
        "ude",
        {
            "type": "residence.student",
            "performer": "amt",
            "person": {
                "given_name": "Layla",
                "family_name": "Haddad",
                "birth_date": BORN,
                "partner_reference": "UDE-MV-2027-0042",
            },
            "payload": {"programme": "Maschinenbau M.Sc.", "semester": "2027W"},
        },
    )
    for step in (
        {"status": "accepted"},
        {"status": "in-progress", "business_status": "APPOINTMENT_BOOKED"},
        {"status": "in-progress", "business_status": "DOCUMENTS_REQUESTED", "note": NOTE},
    ):
        api.status("amt", referral["id"], step)
    read = api.client.get(
        f"/v1/referrals/{referral['id']}", headers=api.partners.headers(api.client, "amt")
    )
    assert read.status_code == 200, read.text

    # A team lead opens the client's page: a staff view on the access list.
    staff = browser.new_context(locale="de-DE")
    page = staff.new_page()
    page.goto(f"{gateway.url}/staff/login")
    page.get_by_label("E-Mail-Adresse").fill(EMAIL)
    page.get_by_label("Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("button", name="Abmelden")).to_be_visible()
    page.goto(f"{gateway.url}/staff/people/{referral['person_id']}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(referral["person_id"])
    staff.close()
    yield referral["person_id"]


def code_for(running: Running, person_id: str) -> str:
    """A fresh access code, as a caseworker issues it."""
    with unit_of_work(running.hub.session_factory) as session:
        return issue(session, person_id=person_id, by=EMAIL, by_type="staff", now=utcnow()).code


def test_a_client_walks_from_the_code_to_a_checked_proof_in_german_and_arabic(
    stack: tuple[Running, Gateway, dict[str, Sim]],
    browser: Browser,
    case: str,
    tmp_path: Path,
) -> None:
    assert AXE.exists(), "make tests/contracts/node_modules/.installed"
    running, gateway, _ = stack
    found: list[str] = []
    weights: list[tuple[str, str, int]] = []
    axe: list[str] = []

    # German: the browser's language.
    de, en = words("de"), words("en")
    visit = Visit(browser, language="de")
    page = visit.page
    page.goto(f"{gateway.url}{PORTAL}/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", level=1)).to_have_text(de["start.title"])
    found += visit.check("start")
    visit.sign_in(code_for(running, case), de)
    main = page.locator("main").inner_text()
    for text in ("Es fehlen noch Unterlagen.", "Bitte schicken Sie die fehlenden Unterlagen an"):
        assert text in main, main
    for text in case_texts(de):
        assert text in main, (text, main)
    assert NOTE not in page.content()
    found += visit.check("case")
    shoot_390(page, tmp_path, "portal-de")

    visit.open_access_list(de)
    listing = page.locator("main").inner_text()
    assert de["access.what_read"] in listing and de["access.what_viewed"] in listing, listing
    assert de["access.role.team_lead"] in listing and EMAIL not in page.content(), listing
    found += visit.check("access")
    page.get_by_role("link", name=de["access.proof_link"]).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(de["proof.title"])
    found += visit.check("proof")

    # A proof with one hash changed fails the check; the real one passes.
    button, result = page.locator("#check-button"), page.locator("#check-result")
    page.route("**/nachweis/*.json", tampered)
    button.click()
    expect(result).to_have_class("bad")
    expect(result).to_have_text(de["proof.bad"])
    page.unroute("**/nachweis/*.json")
    button.click()
    expect(result).to_have_class("ok")
    expect(result).to_have_text(de["proof.ok"])

    # The same client switches to English on the proof page and goes back to the list.
    page.get_by_role("link", name=en["language.name"]).click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    visit.language = "en"
    page.get_by_role("link", name=en["proof.back"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(en["access.title"])
    found += visit.check("access")
    shoot_390(page, tmp_path, "portal-en-access")
    weights += visit.weights
    axe += visit.axe
    visit.close()

    # Arabic: chosen on the start page before signing in.
    ar = words("ar")
    visit = Visit(browser, language="ar")
    page = visit.page
    page.goto(f"{gateway.url}{PORTAL}/")
    page.get_by_role("link", name=ar["language.name"]).click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    expect(page.get_by_role("heading", level=1)).to_have_text(ar["start.title"])
    found += visit.check("start")
    visit.sign_in(code_for(running, case), ar)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("html")).to_have_attribute("lang", "ar")
    main = page.locator("main").inner_text()
    for text in case_texts(ar):
        assert text in main, (text, main)
    assert NOTE not in page.content()
    found += visit.check("case")
    shoot_390(page, tmp_path, "portal-ar")

    visit.open_access_list(ar)
    assert ar["access.what_read"] in page.locator("main").inner_text()
    found += visit.check("access")
    page.get_by_role("link", name=ar["access.proof_link"]).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(ar["proof.title"])
    found += visit.check("proof")
    page.locator("#check-button").click()
    expect(page.locator("#check-result")).to_have_class("ok")
    expect(page.locator("#check-result")).to_have_text(ar["proof.ok"])
    weights += visit.weights
    axe += visit.axe
    visit.close()

    print("\npage weights at 320 px (HTML + CSS + JS, bytes):")
    for language, name, weight in weights:
        print(f"  {language} {name:<7} {weight:>6}")
    print("axe-core (wcag2a, wcag2aa, wcag21a, wcag21aa) at 320 px:")
    print("\n".join(f"  {line}" for line in axe))
    assert not found, "\n".join(found)


def test_the_case_and_the_proof_download_work_without_javascript(
    stack: tuple[Running, Gateway, dict[str, Sim]], browser: Browser, case: str
) -> None:
    running, gateway, _ = stack
    de = words("de")
    visit = Visit(browser, language="de", script=False)
    page = visit.page
    page.goto(f"{gateway.url}{PORTAL}/")
    visit.sign_in(code_for(running, case), de)
    main = page.locator("main").inner_text()
    for text in case_texts(de):
        assert text in main, (text, main)
    assert NOTE not in page.content()

    visit.open_access_list(de)
    page.get_by_role("link", name=de["access.proof_link"]).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(de["proof.title"])
    expect(page.locator("#check-button")).to_be_hidden()
    expect(page.get_by_text(de["proof.no_script"])).to_be_visible()
    download = page.get_by_role("link", name=de["proof.download"])
    expect(download).to_be_visible()
    expect(download).to_have_attribute("href", re.compile(r"/mein-verfahren/nachweis/\d+\.json$"))
    with page.expect_download() as got:
        download.click()
    proof = got.value
    assert proof.suggested_filename.startswith("nachweis-"), proof.suggested_filename
    assert '"checkpoint"' in Path(proof.path()).read_text()
    visit.close()
