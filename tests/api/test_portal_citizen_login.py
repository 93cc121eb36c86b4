"""Signing in to Mein Verfahren with the city's citizen login, against a real OpenID Connect
provider on loopback (tests/oidc_provider.py): the first time with a code as well, which
links the login to the person; later without a code. Another login, a forged state or a
token signed with another key opens nothing, and the hub keeps no clear subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select

from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.portal.citizen import PENDING_COOKIE
from hub.portal.models import CitizenLink, ClientSession
from hub.portal.pages import SESSION_COOKIE
from hub.portal.words import Words
from tests.hubtest import Partners, api_client, make_hub
from tests.oidc_provider import OidcProvider, User, new_key
from tests.portalweb import PORTAL, Case, invite, portal_client, sign_in, student_case
from tests.security.support import snapshot

CLIENT_ID = "mein-verfahren"
CLIENT_SECRET = "a citizen login test secret"
CALLBACK = f"https://testserver{PORTAL}/buergerkonto/antwort"
SUBJECT = "bund-7f3a9c21-4711"
OTHER_SUBJECT = "bund-0b1e44d8-0815"
DE = Words("de")


def text_of(key: str) -> str:
    """A fixed German text as a template prints it (escaped)."""
    return str(escape(DE.t(key)))


CASE_TEXT = DE.plain("type.residence.student") or "?"


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with OidcProvider(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        user=User(email="wei.li@example.org", sub=SUBJECT),
    ) as p:
        yield p


@pytest.fixture
def citizen_hub(
    database_url: str, tmp_path: Path, provider: OidcProvider
) -> Iterator[tuple[Hub, Case]]:
    hub, partners = make_hub(
        database_url,
        tmp_path,
        citizen_oidc_issuer=provider.url,
        citizen_oidc_client_id=CLIENT_ID,
        citizen_oidc_client_secret=CLIENT_SECRET,
    )
    yield hub, made_case(hub, partners)
    hub.engine.dispose()


def made_case(hub: Hub, partners: Partners) -> Case:
    with api_client(hub) as api:
        return student_case(api, partners)


def start(browser: TestClient) -> str:
    """Begin the citizen login; returns the provider's authorization URL."""
    r = browser.get(PORTAL + "/buergerkonto", follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def authorize(url: str) -> str:
    """The provider approves; returns our callback's path and query."""
    r = httpx.get(url, follow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    target = urlsplit(r.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    return f"{target.path}?{target.query}"


def log_in(browser: TestClient) -> httpx.Response:
    return browser.get(authorize(start(browser)), follow_redirects=False)


def sessions(hub: Hub) -> int:
    with unit_of_work(hub.session_factory) as session:
        return int(session.scalar(select(func.count()).select_from(ClientSession)) or 0)


def links(hub: Hub) -> list[tuple[str, str]]:
    with unit_of_work(hub.session_factory) as session:
        return [(r.subject_hash, r.person_id) for r in session.scalars(select(CitizenLink))]


def refusals(hub: Hub) -> list[str]:
    with unit_of_work(hub.session_factory) as session:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action == "client.login_refused")
            .order_by(AuditRecord.seq)
        )
        return [str((r.details or {}).get("reason")) for r in rows]


def no_session_cookie(r: httpx.Response) -> bool:
    return not any(c.startswith(SESSION_COOKIE + "=") for c in r.headers.get_list("set-cookie"))


def test_the_first_login_links_with_a_code_and_later_ones_need_none(
    citizen_hub: tuple[Hub, Case], provider: OidcProvider
) -> None:
    hub, case = citizen_hub
    browser = portal_client(hub)
    assert f'href="{PORTAL}/buergerkonto"' in browser.get(PORTAL + "/").text
    url = start(browser)
    assert url.startswith(f"{provider.url}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    # Only who someone is: no name, no e-mail address.
    assert query["scope"] == "openid"
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256" and query["state"] and query["nonce"]

    first = browser.get(authorize(url), follow_redirects=False)
    assert first.status_code == 200, first.text
    assert text_of("citizen.link_title") in first.text
    assert 'name="code"' in first.text and CASE_TEXT not in first.text
    assert no_session_cookie(first)
    assert any(c.startswith(PENDING_COOKIE + "=") for c in first.headers.get_list("set-cookie"))
    assert links(hub) == [] and sessions(hub) == 0
    # Until a code is entered, the login alone opens nothing.
    assert CASE_TEXT not in browser.get(PORTAL + "/").text

    signed = sign_in(browser, invite(hub, case.person_id), case.birth_date)
    assert signed.status_code == 303, signed.text
    assert CASE_TEXT in browser.get(PORTAL + "/").text
    ((subject_hash, person_id),) = links(hub)
    assert person_id == case.person_id
    with unit_of_work(hub.session_factory) as session:
        methods = session.scalars(select(ClientSession.method)).all()
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.person_id == case.person_id)
        ).all()
    assert methods == ["citizen"]
    assert "client.citizen_linked" in actions

    # A fresh browser: the citizen login alone opens the case now.
    again = portal_client(hub)
    second = log_in(again)
    assert second.status_code == 303, second.text
    assert second.headers["location"] == PORTAL + "/"
    assert not no_session_cookie(second)
    page = again.get(PORTAL + "/")
    assert CASE_TEXT in page.text and 'name="code"' not in page.text
    assert links(hub) == [(subject_hash, case.person_id)]


def test_another_login_is_not_linked(citizen_hub: tuple[Hub, Case], provider: OidcProvider) -> None:
    hub, case = citizen_hub
    linked = portal_client(hub)
    log_in(linked)
    assert sign_in(linked, invite(hub, case.person_id), case.birth_date).status_code == 303

    provider.user = User(email="someone@example.org", sub=OTHER_SUBJECT)
    stranger = portal_client(hub)
    r = log_in(stranger)
    assert r.status_code == 200, r.text
    assert text_of("citizen.link_title") in r.text and 'name="code"' in r.text
    assert CASE_TEXT not in r.text and no_session_cookie(r)
    assert CASE_TEXT not in stranger.get(PORTAL + "/").text
    assert len(links(hub)) == 1 and sessions(hub) == 1
    # The linked login still opens the case on its own.
    provider.user = User(email="wei.li@example.org", sub=SUBJECT)
    assert log_in(portal_client(hub)).status_code == 303


def test_a_forged_state_opens_nothing(citizen_hub: tuple[Hub, Case]) -> None:
    hub, _ = citizen_hub
    browser = portal_client(hub)
    callback = authorize(start(browser))
    path, _, query = callback.partition("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    for state in (params["state"][:-2] + "xy", "", "ü" * 43):
        r = browser.get(path, params={**params, "state": state}, follow_redirects=False)
        assert 400 <= r.status_code < 500, (state, r.status_code, r.text[:200])
        assert text_of("citizen.failed") in r.text
        assert no_session_cookie(r)
    # The callback without a started login is refused the same way.
    r = portal_client(hub).get(callback, follow_redirects=False)
    assert 400 <= r.status_code < 500 and text_of("citizen.failed") in r.text
    assert sessions(hub) == 0 and links(hub) == []
    assert set(refusals(hub)) <= {"state_mismatch", "state_missing_or_expired"}
    assert "state_mismatch" in refusals(hub)


def test_a_token_signed_with_another_key_opens_nothing(
    citizen_hub: tuple[Hub, Case], provider: OidcProvider
) -> None:
    hub, case = citizen_hub
    # First link the login, so that a forged token would open a case if it were believed.
    linked = portal_client(hub)
    log_in(linked)
    assert sign_in(linked, invite(hub, case.person_id), case.birth_date).status_code == 303
    before = sessions(hub)
    for key in (new_key(kid=provider.key.kid), new_key()):
        provider.signing_key = key
        browser = portal_client(hub)
        r = log_in(browser)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])
        assert text_of("citizen.failed") in r.text
        assert no_session_cookie(r)
        assert CASE_TEXT not in browser.get(PORTAL + "/").text
    assert sessions(hub) == before
    assert refusals(hub)[-2:] == ["id_token_invalid", "id_token_key_unknown"]


def test_no_clear_subject_is_stored(citizen_hub: tuple[Hub, Case]) -> None:
    hub, case = citizen_hub
    browser = portal_client(hub)
    log_in(browser)
    assert sign_in(browser, invite(hub, case.person_id), case.birth_date).status_code == 303
    assert log_in(portal_client(hub)).status_code == 303
    ((subject_hash, _),) = links(hub)
    assert re.fullmatch(r"[0-9a-f]{64}", subject_hash)
    # Nowhere in the database, audit trail included.
    for table, rows in snapshot(hub, skip=frozenset()).items():
        for row in rows:
            assert SUBJECT not in row, (table, row)


def test_revoking_the_code_that_linked_a_login_unlinks_it(
    citizen_hub: tuple[Hub, Case], provider: OidcProvider
) -> None:
    """A letter that reached the wrong hands leaves no login behind once its code is revoked."""
    from hub.db import utcnow
    from hub.portal.invites import revoke
    from hub.portal.models import ClientInvite

    hub, case = citizen_hub
    browser = portal_client(hub)
    assert log_in(browser).status_code == 200
    assert sign_in(browser, invite(hub, case.person_id), case.birth_date).status_code == 303
    later = portal_client(hub)
    assert log_in(later).status_code == 303  # linked: no code needed
    assert CASE_TEXT in later.get(PORTAL + "/").text
    with unit_of_work(hub.session_factory) as session:
        invite_id = session.scalars(select(ClientInvite.id)).one()
        ended = revoke(session, invite_id=invite_id, by="res@duisburg.de", by_type="staff",
                       now=utcnow())  # fmt: skip
    assert ended == 2  # the session the code opened and the one the login opened
    assert links(hub) == []
    assert CASE_TEXT not in browser.get(PORTAL + "/").text
    assert CASE_TEXT not in later.get(PORTAL + "/").text
    third = log_in(portal_client(hub))
    assert third.status_code == 200 and text_of("citizen.link_title") in third.text
