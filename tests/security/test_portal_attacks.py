"""Attacks on Mein Verfahren that must fail: one client reading another's proofs or case,
personal data in links, framing, forged forms, malformed input, guessing codes fast, stale
sessions, and a portal that is switched off.

Two clients, A and B, each with their own case and partner reads on both, signed in side by
side. Whatever A asks for that belongs to B answers exactly like something that does not
exist, and nothing of B ever reaches A's pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select, update

from hub import cli
from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.db import unit_of_work, utcnow
from hub.portal.invites import Issued, issue, revoke
from hub.portal.models import ClientInvite, ClientSession
from hub.portal.pages import SESSION_COOKIE
from hub.portal.words import Words
from hub.privacy.service import erase_person
from tests.hubtest import Partners, api_client, make_hub
from tests.portalweb import (
    PORTAL,
    Case,
    csrf_of,
    invite,
    portal_client,
    sequence,
    sign_in,
    student_case,
)

DE = Words("de")
PERSON_A = {
    "given_name": "Amira",
    "family_name": "Haddad",
    "birth_date": "1998-07-21",
    "partner_reference": "ES098765432",
}
PERSON_B = {
    "given_name": "Bohdan",
    "family_name": "Kovalenko",
    "birth_date": "2000-11-09",
    "partner_reference": "ES055501234",
}
#: Leaf indexes no audit log reaches; the largest do not fit a 64-bit column.
HUGE = (2**31, 2**63 - 1, 2**63, 10**30)
HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
}


def german(born: str) -> str:
    """``2000-11-09`` as a client types it: ``09.11.2000``."""
    year, month, day = born.split("-")
    return f"{day}.{month}.{year}"


def text_of(key: str) -> str:
    """A fixed German text as a template prints it (escaped)."""
    return str(escape(DE.t(key)))


@dataclass
class Client:
    """One signed-in client: their case, their browser, the secrets that are theirs."""

    case: Case
    person: dict[str, str]
    browser: TestClient
    referrals: list[str]
    types: list[str]

    @property
    def secrets(self) -> list[str]:
        """What identifies this client or their case and must never reach another client."""
        p = self.person
        return [
            self.case.person_id,
            *self.referrals,
            p["given_name"],
            p["family_name"],
            p["birth_date"],
            german(p["birth_date"]),
            p["partner_reference"],
            *self.types,
        ]


@dataclass
class Pair:
    hub: Hub
    a: Client
    b: Client
    leaves: dict[str | None, list[int]]


def leaves_by_person(hub: Hub) -> dict[str | None, list[int]]:
    """Every sequenced leaf index, by the person its record is about (None: about no one)."""
    found: dict[str | None, list[int]] = {}
    with unit_of_work(hub.session_factory) as session:
        rows = session.execute(
            select(AuditRecord.person_id, AuditRecord.leaf_index, AuditRecord.actor_type).where(
                AuditRecord.leaf_index.is_not(None)
            )
        )
        for person_id, leaf, actor_type in rows:
            if actor_type != "client" and leaf is not None:
                found.setdefault(person_id, []).append(leaf)
    return found


def signed_in(hub: Hub, case: Case) -> TestClient:
    browser = portal_client(hub)
    r = sign_in(browser, invite(hub, case.person_id), case.birth_date)
    assert r.status_code == 303, r.text
    return browser


@pytest.fixture
def pair(hub_and_partners: tuple[Hub, Partners], client: TestClient) -> Pair:
    """Clients A and B with their own cases, partner reads on both, each signed in."""
    hub, partners = hub_and_partners
    amt, fosa = partners.headers(client, "amt"), partners.headers(client, "ihk-fosa")
    case_a = student_case(client, partners, person=PERSON_A)
    case_b = student_case(client, partners, person=PERSON_B)
    assert case_a.person_id != case_b.person_id
    # B also has a recognition case at the chamber: a type A's pages never mention.
    recognition = client.post(
        "/v1/referrals",
        json={
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"id": case_b.person_id},
            "payload": {},
        },
        headers=amt,
    )
    assert recognition.status_code == 202, recognition.text
    assert recognition.json()["person_id"] == case_b.person_id
    for rid, headers in (
        (case_a.referral_id, amt),
        (case_b.referral_id, amt),
        (recognition.json()["id"], fosa),
    ):
        assert client.get(f"/v1/referrals/{rid}", headers=headers).status_code == 200
    sequence(hub)
    a = Client(
        case_a,
        PERSON_A,
        signed_in(hub, case_a),
        [case_a.referral_id],
        [],
    )
    b = Client(
        case_b,
        PERSON_B,
        signed_in(hub, case_b),
        [case_b.referral_id, recognition.json()["id"]],
        [
            DE.label("type", "recognition.assessment"),
            DE.plain("type.recognition.assessment") or "",
            "IHK FOSA",
        ],
    )
    leaves = leaves_by_person(hub)
    assert leaves.get(case_a.person_id) and leaves.get(case_b.person_id) and leaves.get(None)
    return Pair(hub, a, b, leaves)


def same_page(text: str) -> str:
    """A page with the leaf number it was asked for taken out (the language links name it)."""
    return re.sub(r"nachweis(/|%2F)\d+", r"nachweis\1N", text)


def sessions_of(hub: Hub, person_id: str | None = None) -> int:
    with unit_of_work(hub.session_factory) as session:
        query = select(func.count()).select_from(ClientSession)
        if person_id is not None:
            query = query.where(ClientSession.person_id == person_id)
        return int(session.scalar(query) or 0)


def audit_actions(hub: Hub, action: str) -> list[AuditRecord]:
    with unit_of_work(hub.session_factory) as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)
        ).all()
        session.expunge_all()
        return list(rows)


# ---------------------------------------------------------------------- BOLA on proofs


def test_another_clients_proofs_answer_like_proofs_that_do_not_exist(pair: Pair) -> None:
    """Signed in as one client, every leaf of the other, of no one, and far beyond the log
    answers 404 with the very page of a leaf that does not exist; one's own leaf answers."""
    top = max(leaf for leaves in pair.leaves.values() for leaf in leaves)
    for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
        mine = pair.leaves[me.case.person_id][0]
        assert me.browser.get(f"{PORTAL}/nachweis/{mine}").status_code == 200
        own = me.browser.get(f"{PORTAL}/nachweis/{mine}.json")
        assert own.status_code == 200 and own.json()["leaf_index"] == mine
        missing = {
            suffix: me.browser.get(f"{PORTAL}/nachweis/{top + 1000}{suffix}")
            for suffix in ("", ".json")
        }
        for answer in missing.values():
            assert answer.status_code == 404, answer.text
        probes = [*pair.leaves[other.case.person_id], *pair.leaves[None], *HUGE]
        viewed = len(audit_actions(pair.hub, "client.proof_viewed"))
        for leaf in probes:
            for suffix, reference in missing.items():
                r = me.browser.get(f"{PORTAL}/nachweis/{leaf}{suffix}")
                where = f"leaf {leaf}{suffix} as {me.person['given_name']}"
                assert r.status_code == 404, f"{where}: {r.status_code} {r.text[:300]}"
                assert same_page(r.text) == same_page(reference.text), where
                assert r.headers["content-type"] == reference.headers["content-type"], where
                assert "content-disposition" not in r.headers, where
                for secret in other.secrets:
                    assert secret not in r.text, (where, secret)
        # A refused proof is not a proof viewed.
        assert len(audit_actions(pair.hub, "client.proof_viewed")) == viewed


def test_a_clients_pages_never_show_the_other_client(pair: Pair) -> None:
    for me, other in ((pair.a, pair.b), (pair.b, pair.a)):
        leaf = pair.leaves[me.case.person_id][0]
        pages = {
            path: me.browser.get(PORTAL + path)
            for path in ("/", "/zugriffe", f"/nachweis/{leaf}", f"/nachweis/{leaf}.json")
        }
        for path, page in pages.items():
            assert page.status_code == 200, (path, page.text)
            for secret in other.secrets:
                assert secret not in page.text, (me.person["given_name"], path, secret)
        # The check means something: the other client's own page does name their case.
        assert DE.label("type", "residence.student") in pages["/"].text
    b_case = pair.b.browser.get(PORTAL + "/").text
    assert str(escape(pair.b.types[0])) in b_case


def test_a_code_with_the_other_clients_birth_date_fails(pair: Pair) -> None:
    hub, a, b = pair.hub, pair.a, pair.b
    before = sessions_of(hub)
    for born in (b.person["birth_date"], german(b.person["birth_date"])):
        browser = portal_client(hub)
        r = sign_in(browser, invite(hub, a.case.person_id), born)
        assert r.status_code == 401, r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
        page = browser.get(PORTAL + "/").text
        for secret in (*a.secrets, *b.secrets):
            assert secret not in page
    assert sessions_of(hub) == before
    refused = audit_actions(hub, "client.login_refused")
    assert [r.details["reason"] for r in refused if r.details] == ["birth_date_wrong"] * 2
    assert {r.person_id for r in refused} == {a.case.person_id}


def test_an_altered_session_cookie_opens_no_case(pair: Pair) -> None:
    hub, b = pair.hub, pair.b
    token = b.browser.cookies.get(SESSION_COOKIE)
    assert token
    start_title = text_of("start.title")
    for position in (0, len(token) // 2, len(token) - 1):
        swapped = "A" if token[position] != "A" else "B"
        forged = token[:position] + swapped + token[position + 1 :]
        browser = portal_client(hub)
        headers = {"Cookie": f"{SESSION_COOKIE}={forged}"}
        page = browser.get(PORTAL + "/", headers=headers)
        assert page.status_code == 200
        assert start_title in page.text and 'name="code"' in page.text
        for secret in b.secrets:
            assert secret not in page.text
        assert DE.plain("type.residence.student") not in page.text
        listing = browser.get(PORTAL + "/zugriffe", headers=headers, follow_redirects=False)
        assert listing.status_code == 303
        assert listing.headers["location"] == PORTAL + "/"
    # Forged cookies end nothing: B's own session still works.
    assert sessions_of(hub, b.case.person_id) == 1
    assert b.browser.get(PORTAL + "/zugriffe").status_code == 200


# ---------------------------------------------------------------------- nothing personal in URLs

LINK = re.compile(r'\b(?:href|action|src)="([^"]*)"')


def test_no_link_carries_personal_data(pair: Pair) -> None:
    """Crawl every page the signed-in client can reach; no URL names the person."""
    a = pair.a
    secrets = [*a.secrets, *pair.b.secrets]
    seen: set[str] = set()
    queue = [PORTAL + "/"]
    crawled = 0
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        page = a.browser.get(path, follow_redirects=False)
        assert page.status_code == 200, (path, page.status_code)
        crawled += 1
        if not page.headers["content-type"].startswith("text/html"):
            continue
        for raw in LINK.findall(page.text):
            link = raw.replace("&amp;", "&")
            for secret in secrets:
                assert secret not in link, (path, link, secret)
            assert not re.search(r"\bp_[A-Za-z0-9_-]{6,}", link), (path, link)
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, (path, link)
            if parts.query:
                assert parts.path.startswith(PORTAL + "/sprache/"), (path, link)
                assert set(parse_qs(parts.query)) == {"next"}, (path, link)
                assert parse_qs(parts.query)["next"][0].startswith(PORTAL + "/"), (path, link)
            internal = parts.path.startswith(PORTAL + "/")
            skipped = parts.path.startswith((PORTAL + "/static/", PORTAL + "/sprache/"))
            if internal and not skipped and not parts.path.endswith("/abmelden"):
                queue.append(parts.path)
    assert any("/nachweis/" in p for p in seen), seen
    assert PORTAL + "/zugriffe" in seen and crawled >= 4


# ---------------------------------------------------------------------- headers and cookies


def assert_page_headers(r: httpx.Response, *, cached: bool = False) -> None:
    where = f"{r.request.method} {r.request.url.path}"
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (where, name, r.headers.get(name))
    assert r.headers.get("referrer-policy"), where
    if cached:
        assert "no-store" not in r.headers.get("cache-control", ""), where
    else:
        assert r.headers.get("cache-control") == "no-store", where


def test_every_portal_page_has_the_security_headers(pair: Pair) -> None:
    a = pair.a
    leaf = pair.leaves[a.case.person_id][0]
    stranger = portal_client(pair.hub)
    answers = [
        (stranger.get(PORTAL + "/"), 200),
        (stranger.get(PORTAL + "/gibt-es-nicht"), 404),
        (stranger.get(PORTAL, follow_redirects=False), 303),
        (stranger.get(PORTAL + "/zugriffe", follow_redirects=False), 303),
        (a.browser.get(PORTAL + "/"), 200),
        (a.browser.get(PORTAL + "/zugriffe"), 200),
        (a.browser.get(f"{PORTAL}/nachweis/{leaf}"), 200),
        (a.browser.get(f"{PORTAL}/nachweis/{leaf}.json"), 200),
        (a.browser.get(f"{PORTAL}/nachweis/{10**30}"), 404),
        (a.browser.get(PORTAL + "/gibt-es-nicht"), 404),
        (a.browser.post(PORTAL + "/abmelden", data={}), 403),
    ]
    for r, status in answers:
        assert r.status_code == status, (r.request.url.path, r.status_code, r.text[:200])
        assert_page_headers(r)
    for asset in ("portal.css", "code.js", "proof.js"):
        r = stranger.get(f"{PORTAL}/static/{asset}")
        assert r.status_code == 200
        assert_page_headers(r, cached=True)


def test_the_session_cookie_is_httponly_secure_strict_and_portal_only(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    r = sign_in(portal_client(hub), invite(hub, case.person_id), case.birth_date)
    assert r.status_code == 303
    (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")]
    attributes = {}
    for part in cookie.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    assert "httponly" in attributes and "secure" in attributes, cookie
    assert attributes.get("samesite", "").lower() == "strict", cookie
    assert attributes.get("path") == PORTAL, cookie
    assert "domain" not in attributes, cookie


# ---------------------------------------------------------------------- forged forms


def test_sign_in_without_the_forms_token_is_refused(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)
    token = csrf_of(browser.get(PORTAL + "/").text)
    form = {"code": code, "birth_date": case.birth_date}
    for sent in (None, "", "x", token[:-1], token + "x", "ä" * 43, "\u202e" + token[1:], "🙂"):
        data = form if sent is None else {**form, "csrf_token": sent}
        r = browser.post(PORTAL + "/", data=data, follow_redirects=False)
        assert r.status_code == 403, (sent, r.status_code, r.text[:200])
        assert text_of("error.csrf") in r.text
    # Without the start page's cookie even its token is refused (a cross-site form).
    bare = portal_client(hub)
    r = bare.post(PORTAL + "/", data={**form, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 403
    assert sessions_of(hub) == 0
    with unit_of_work(hub.session_factory) as session:
        (row,) = session.scalars(select(ClientInvite)).all()
        assert row.used_at is None and row.failed_attempts == 0
    # The code was never tried: it still opens the case.
    assert sign_in(browser, code, case.birth_date).status_code == 303


def test_logging_out_without_the_sessions_token_is_refused(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    browser = signed_in(hub, case)
    # Another browser's start-page token is no token of this session.
    foreign = csrf_of(portal_client(hub).get(PORTAL + "/").text)
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "ü" * 43}, {"csrf_token": foreign}):
        r = browser.post(PORTAL + "/abmelden", data=data, follow_redirects=False)
        assert r.status_code == 403, (data, r.status_code)
        assert text_of("error.csrf") in r.text
        assert shows_case(browser), data
    assert sessions_of(hub) == 1
    assert browser.get(PORTAL + "/zugriffe").status_code == 200


# ---------------------------------------------------------------------- bad input

BAD_INPUT = [
    ("overlong code", "A" * 10_000, None),
    ("overlong code and date", "A" * 10_000, "1" * 10_000),
    ("31 February", None, "31.02.2001"),
    ("not a date", None, "abc"),
    ("empty", "", ""),
    ("no code", "", None),
    ("no date", None, ""),
    ("blank", "   ", "  "),
    ("too many dots", None, "1.2.3.4"),
    ("year out of range", None, "01.01.99999"),
    ("a date and a time", None, "2001-04-03T10:00"),
    ("a NUL", None, "\x00"),
    ("negative", None, "-1.-1.-1"),
]


def test_malformed_sign_in_input_is_a_4xx_page_and_changes_nothing(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)
    for name, sent_code, sent_date in BAD_INPUT:
        page = browser.get(PORTAL + "/")
        data = {
            "code": code if sent_code is None else sent_code,
            "birth_date": case.birth_date if sent_date is None else sent_date,
            "csrf_token": csrf_of(page.text),
        }
        r = browser.post(PORTAL + "/", data=data, follow_redirects=False)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html"), name
        assert 'role="alert"' in r.text, name
        assert SESSION_COOKIE not in r.headers.get("set-cookie", ""), name
    assert sessions_of(hub) == 0
    with unit_of_work(hub.session_factory) as session:
        (row,) = session.scalars(select(ClientInvite)).all()
        assert row.used_at is None and row.revoked_at is None and row.failed_attempts == 0
    # None of it was a try at the code.
    assert sign_in(browser, code, german(case.birth_date)).status_code == 303


# ---------------------------------------------------------------------- guessing fast


def test_the_eleventh_attempt_in_a_minute_is_throttled(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    code = invite(hub, case.person_id)
    browser = portal_client(hub)  # a fresh app: the throttle counts per process
    for attempt in range(10):
        r = sign_in(browser, f"ZZZZ-ZZZZ-{attempt:04d}", case.birth_date)
        assert r.status_code == 401, (attempt, r.text[:200])
    throttled = sign_in(browser, code, case.birth_date)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"].isdigit() and int(throttled.headers["retry-after"]) > 0
    assert text_of("start.throttled") in throttled.text
    assert sessions_of(hub) == 0
    with unit_of_work(hub.session_factory) as session:
        (row,) = session.scalars(select(ClientInvite)).all()
        assert row.used_at is None and row.failed_attempts == 0


# ---------------------------------------------------------------------- sessions end


def issue_for(hub: Hub, person_id: str) -> Issued:
    with unit_of_work(hub.session_factory) as session:
        return issue(
            session,
            person_id=person_id,
            by="caseworker@duisburg.test",
            by_type="staff",
            now=utcnow(),
        )


def shows_case(browser: TestClient) -> bool:
    page = browser.get(PORTAL + "/")
    assert page.status_code == 200
    return (DE.plain("type.residence.student") or "?") in page.text


def test_a_session_ends_after_fifteen_idle_minutes(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    browser = signed_in(hub, case)

    def idle(minutes: int) -> None:
        with unit_of_work(hub.session_factory) as session:
            session.execute(
                update(ClientSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes))
            )

    idle(14)
    assert shows_case(browser)  # and the idle clock starts again
    idle(16)
    page = browser.get(PORTAL + "/")
    assert DE.plain("type.residence.student") not in page.text
    assert text_of("start.expired") in page.text
    assert sessions_of(hub) == 0
    assert browser.get(PORTAL + "/zugriffe", follow_redirects=False).status_code == 303


def test_a_session_ends_after_two_hours_even_when_busy(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    browser = signed_in(hub, case)
    with unit_of_work(hub.session_factory) as session:
        session.execute(update(ClientSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not shows_case(browser)
    assert sessions_of(hub) == 0


def test_revoking_the_invite_ends_its_session(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    issued = issue_for(hub, case.person_id)
    browser = portal_client(hub)
    assert sign_in(browser, issued.code, case.birth_date).status_code == 303
    other = signed_in(hub, case)  # a session opened with another code stays
    assert shows_case(browser)
    with unit_of_work(hub.session_factory) as session:
        ended = revoke(
            session,
            invite_id=issued.id,
            by="caseworker@duisburg.test",
            by_type="staff",
            now=utcnow(),
        )
    assert ended == 1
    assert not shows_case(browser)
    assert browser.get(PORTAL + "/zugriffe", follow_redirects=False).status_code == 303
    assert shows_case(other)


def test_erasing_the_person_ends_the_session_and_deletes_the_invites(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    case = student_case(client, partners, person=PERSON_A)
    other = student_case(client, partners, person=PERSON_B)
    browser = signed_in(hub, case)
    spare = invite(hub, case.person_id)
    bystander = signed_in(hub, other)
    assert shows_case(browser)
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id=case.person_id,
            reason="request-art-17",
            by="staff:dsb",
            topic=hub.settings.topic_events,
        )
    page = browser.get(PORTAL + "/")
    assert DE.plain("type.residence.student") not in page.text
    assert 'name="code"' in page.text
    assert browser.get(PORTAL + "/zugriffe", follow_redirects=False).status_code == 303
    with unit_of_work(hub.session_factory) as session:
        left = session.scalar(
            select(func.count())
            .select_from(ClientInvite)
            .where(ClientInvite.person_id == case.person_id)
        )
        assert left == 0
    assert sessions_of(hub, case.person_id) == 0
    assert sign_in(portal_client(hub), spare, case.birth_date).status_code == 401
    # The other client is untouched.
    assert shows_case(bystander)


# ---------------------------------------------------------------------- switched off


@pytest.fixture
def portal_off(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, Partners]]:
    hub, partners = make_hub(database_url, tmp_path, client_view_enabled=False)
    yield hub, partners
    hub.engine.dispose()


def test_a_switched_off_portal_is_not_there(portal_off: tuple[Hub, Partners]) -> None:
    hub, partners = portal_off
    with api_client(hub) as api:
        case = student_case(api, partners, person=PERSON_A)
    browser = portal_client(hub)
    for path in ("/", "", "/zugriffe", "/nachweis/1", "/nachweis/1.json", "/static/portal.css"):
        r = browser.get(PORTAL + path, follow_redirects=False)
        assert r.status_code == 404, (path, r.status_code)
    for path in ("/buergerkonto", "/buergerkonto/antwort?code=x&state=y", "/sprache/en"):
        assert browser.get(PORTAL + path, follow_redirects=False).status_code == 404, path
    r = browser.post(PORTAL + "/", data={"code": "x", "birth_date": "y", "csrf_token": "z"})
    assert r.status_code in (404, 405)
    assert "set-cookie" not in r.headers

    env = {
        "HUB_DATABASE_URL": hub.settings.database_url,
        "HUB_DATA_DIR": str(hub.settings.data_dir),
        "HUB_CLIENT_VIEW_ENABLED": "false",
    }
    refused = CliRunner().invoke(cli.main, ["clients", "invite", case.person_id], env=env)
    assert refused.exit_code != 0
    assert "HUB_CLIENT_VIEW_ENABLED" in refused.output
    assert "code:" not in refused.output
    with unit_of_work(hub.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ClientInvite)) == 0


# ---------------------------------------------------------------------- every view audited


def test_every_view_and_every_refusal_is_audited(pair: Pair) -> None:
    hub, a = pair.hub, pair.a
    leaf = pair.leaves[a.case.person_id][0]
    mark = max((r.seq for r in audit_actions(hub, "client.login")), default=0)
    for path in ("/", "/zugriffe", f"/nachweis/{leaf}", f"/nachweis/{leaf}.json"):
        assert a.browser.get(PORTAL + path).status_code == 200, path

    def viewed(action: str) -> list[AuditRecord]:
        return [r for r in audit_actions(hub, action) if r.seq > mark]

    for action, count in (
        ("client.case_viewed", 1),
        ("client.access_viewed", 1),
        ("client.proof_viewed", 2),
    ):
        rows = viewed(action)
        assert len(rows) == count, (action, rows)
        for row in rows:
            assert (row.actor_type, row.person_id) == ("client", a.case.person_id), action
    assert all(r.details == {"leaf": leaf} for r in viewed("client.proof_viewed"))

    refused_before = len(audit_actions(hub, "client.login_refused"))
    r = sign_in(portal_client(hub), "ZZZZ-ZZZZ-ZZZZ", a.case.birth_date)
    assert r.status_code == 401
    refused = audit_actions(hub, "client.login_refused")
    assert len(refused) == refused_before + 1
    assert refused[-1].actor_type == "client" and refused[-1].actor == "anonymous"
    assert refused[-1].person_id is None
    assert refused[-1].details == {"reason": "code_not_usable"}
