"""The operations pages over HTTP: deliveries and dead letters, partner administration, audit.

Without Kafka here: the dead-letter list must say that it cannot be read, quickly, instead of
failing the page. Replaying a real dead letter is covered by the browser run.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from hub.app import create_app
from hub.audit.models import AuditRecord
from hub.audit.service import record
from hub.db import unit_of_work, utcnow
from hub.deadletters import service as dlq
from hub.deadletters.service import DeadLetter
from hub.deliveries.models import DeliveryState
from hub.events.models import ProcessedEvent
from hub.outbox.models import OutboxEvent
from hub.partners.models import OAuthClient, Partner
from hub.runtime import build_sequencer
from hub.web import deliveries
from hub.web.accounts import add_staff
from tests.hubtest import make_hub
from tests.staffweb import PASSWORD, csrf_of, log_in, staff_client

STAFF = {
    "case@duisburg.de": "caseworker",
    "lead@duisburg.de": "team_lead",
    "dpo@duisburg.de": "dpo",
    "admin@duisburg.de": "admin",
}
PAGES = ("/staff/deliveries", "/staff/partners", "/staff/audit")


def add_accounts(hub: Any) -> None:
    with unit_of_work(hub.session_factory) as session:
        for email, role in STAFF.items():
            purposes = ["residence"] if role in ("caseworker", "team_lead") else []
            add_staff(session, email=email, role=role, purposes=purposes, password=PASSWORD)


@pytest.fixture
def ops_hub(hub_and_partners: Any) -> Any:
    hub, _ = hub_and_partners
    add_accounts(hub)
    return hub


@pytest.fixture
def browser(ops_hub: Any) -> Iterator[TestClient]:
    with staff_client(ops_hub) as c:
        yield c


def login(client: TestClient, email: str) -> str:
    """Log in and return the session's CSRF token."""
    r = log_in(client, email)
    assert r.status_code == 303, r.text
    # Every page has the token in its logout form, the 403 page too; this one audits nothing.
    return csrf_of(client.get("/staff/deliveries").text)


def token_status(client: TestClient, client_id: str, secret: str) -> int:
    r = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return r.status_code


def created_credentials(page_html: str) -> tuple[str, str]:
    client_id = re.search(r'id="new-client-id">([^<]+)<', page_html)
    secret = re.search(r'id="new-client-secret">([^<]+)<', page_html)
    assert client_id and secret, page_html
    return client_id.group(1), secret.group(1)


def audit_actions(hub: Any, prefix: str = "staff.") -> list[tuple[str, str, dict[str, Any]]]:
    with hub.session_factory() as session:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action.startswith(prefix))
            .order_by(AuditRecord.seq)
        )
        return [(r.actor, r.action, r.details) for r in rows]


def count(hub: Any, model: Any) -> int:
    with hub.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# ---------------------------------------------------------------------- roles


def test_pages_need_a_login(browser: TestClient) -> None:
    for page in PAGES:
        r = browser.get(page, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"/staff/login?next={page}"


def test_each_page_admits_only_its_roles(browser: TestClient) -> None:
    allowed = {
        "case@duisburg.de": (),
        "lead@duisburg.de": ("/staff/deliveries",),
        "dpo@duisburg.de": ("/staff/audit",),
        "admin@duisburg.de": PAGES,
    }
    for email, pages in allowed.items():
        login(browser, email)
        for path in PAGES:
            r = browser.get(path)
            expected = 200 if path in pages else 403
            assert r.status_code == expected, (email, path)
            if expected == 403:
                assert "Keine Berechtigung" in r.text


def test_a_caseworker_cannot_post_either(browser: TestClient, ops_hub: Any) -> None:
    token = login(browser, "case@duisburg.de")
    posts = {
        "/staff/partners": {"id": "evil", "name": "Evil", "kind": "authority"},
        "/staff/partners/ude/rotate": {},
        "/staff/partners/ude/mode": {"mode": "pull"},
        "/staff/audit/verify": {},
        "/staff/deadletters/0:0/replay": {},
    }
    clients = count(ops_hub, OAuthClient)
    for path, form in posts.items():
        assert browser.post(path, data={**form, "csrf_token": token}).status_code == 403, path
    assert count(ops_hub, OAuthClient) == clients
    with ops_hub.session_factory() as session:
        assert session.get(Partner, "evil") is None


# ---------------------------------------------------------------------- deliveries


def test_deliveries_show_state_and_lag_and_say_when_kafka_is_down(
    browser: TestClient, ops_hub: Any
) -> None:
    topic = ops_hub.settings.deliveries_topic("ude")
    delivered, waiting = str(uuid.uuid4()), str(uuid.uuid4())
    with unit_of_work(ops_hub.session_factory) as session:
        for event_id in (delivered, waiting):
            session.add(OutboxEvent(event_id=event_id, topic=topic, headers=[], value="{}"))
        session.add(ProcessedEvent(consumer="delivery.ude", event_id=delivered))
        session.add(
            DeliveryState(
                partner_id="ude",
                paused=True,
                paused_since=utcnow(),
                consecutive_failures=3,
                last_error="HTTP 503 <from ude>",
                last_success_at=utcnow(),
                delivered=1,
                dead_lettered=0,
            )
        )
    login(browser, "lead@duisburg.de")
    page = browser.get("/staff/deliveries")
    assert page.status_code == 200
    row = re.search(r'<code class="id">ude</code></th>(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert "pausiert seit" in row.group(1) and "3 Fehlversuche" in row.group(1)
    assert re.search(r"<td>1</td>", row.group(1)), "one routed event not yet delivered"
    assert "HTTP 503 &lt;from ude&gt;" in row.group(1)
    assert "Kafka nicht erreichbar" in page.text


def test_a_backlog_never_delivered_is_not_shown_as_healthy(
    browser: TestClient, ops_hub: Any
) -> None:
    topic = ops_hub.settings.deliveries_topic("ude")
    with unit_of_work(ops_hub.session_factory) as session:
        session.add_all(
            OutboxEvent(event_id=str(uuid.uuid4()), topic=topic, headers=[], value="{}")
            for _ in range(85)
        )
    login(browser, "lead@duisburg.de")
    page = browser.get("/staff/deliveries")
    row = re.search(r'<code class="id">ude</code></th>(.*?)</tr>', page.text, re.S)
    assert row, page.text
    assert "in Ordnung" not in row.group(1)
    assert "gestört" in row.group(1) and "h-bad" in row.group(1)
    assert "85 Ereignisse warten, und noch keine Zustellung ist je gelungen." in row.group(1)
    amt = re.search(r'<code class="id">amt</code></th>(.*?)</tr>', page.text, re.S)
    assert amt and "in Ordnung" in amt.group(1), "nothing waits for the Amt"
    english = browser.get("/staff/lang/en?next=/staff/deliveries").text
    assert "85 events waiting, and no delivery has ever succeeded." in english


@pytest.fixture
def unreachable_kafka(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    hub, _ = make_hub(database_url, tmp_path, kafka_bootstrap_servers="127.0.0.1:9")
    add_accounts(hub)
    with TestClient(create_app(hub, kafka_check=lambda: True), base_url="https://testserver") as c:
        yield c
    hub.engine.dispose()


def test_an_unreachable_broker_gives_a_message_fast_not_a_500(
    unreachable_kafka: TestClient,
) -> None:
    token = login(unreachable_kafka, "lead@duisburg.de")
    started = time.monotonic()
    page = unreachable_kafka.get("/staff/deliveries")
    assert page.status_code == 200
    assert "Kafka nicht erreichbar" in page.text
    replay = unreachable_kafka.post("/staff/deadletters/0:1/replay", data={"csrf_token": token})
    assert replay.status_code == 503 and "Kafka nicht erreichbar" in replay.text
    assert time.monotonic() - started < 5, "the probe answers before the Kafka client gives up"
    english = unreachable_kafka.get("/staff/lang/en?next=/staff/deliveries")
    assert "Kafka unreachable" in english.text and "Deliveries to partners" in english.text


# ---------------------------------------------------------------------- partners


def test_register_a_partner_and_its_secret_shows_once(browser: TestClient, ops_hub: Any) -> None:
    token = login(browser, "admin@duisburg.de")
    listing = browser.get("/staff/partners")
    assert "ude" in listing.text and "client_secret_basic" in listing.text
    r = browser.post(
        "/staff/partners",
        data={
            "csrf_token": token,
            "id": "vhs",
            "name": "Volkshochschule <Duisburg>",
            "kind": "authority",
            "scopes": ["referrals:read", "inbox:read"],
            "auth_method": "client_secret_basic",
        },
    )
    assert r.status_code == 200, r.text
    assert "nur jetzt angezeigt" in r.text and "Volkshochschule &lt;Duisburg&gt;" in r.text
    client_id, secret = created_credentials(r.text)
    assert client_id.startswith("vhs-")
    assert token_status(browser, client_id, secret) == 200
    again = browser.get("/staff/partners")
    assert client_id in again.text and secret not in again.text
    with ops_hub.session_factory() as session:
        partner = session.get(Partner, "vhs")
        assert partner is not None and partner.delivery_mode == "pull"
        assert not partner.dpop_required
    r = browser.post(
        "/staff/partners",
        data={
            "csrf_token": token,
            "id": "vhs-dpop",
            "name": "Volkshochschule, DPoP",
            "kind": "authority",
            "scopes": ["referrals:read"],
            "auth_method": "client_secret_basic",
            "dpop": "on",
        },
    )
    assert r.status_code == 200, r.text
    dpop_id, dpop_secret = created_credentials(r.text)
    refused = browser.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(dpop_id, dpop_secret)
    )
    assert refused.status_code == 400 and "DPoP" in refused.text, "a proof is required"
    registered = [a for a in audit_actions(ops_hub) if a[1] == "staff.partner_registered"]
    registered = [a for a in registered if a[2]["client_id"] == client_id]
    assert len(registered) == 1 and registered[0][0] == "admin@duisburg.de"
    assert registered[0][2]["client_id"] == client_id and secret not in json.dumps(registered)


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"id": "ude", "kind": "university"}, 409, "already registered"),
        ({"id": "Bad ID", "kind": "authority"}, 422, "lower-case letters"),
        ({"id": "müller", "kind": "authority"}, 422, "lower-case letters"),
        ({"id": "new-one", "kind": "ministry"}, 422, "kind must be one of"),
        ({"id": "new-one", "kind": "authority", "scopes": []}, 422, "scopes"),
        ({"id": "new-one", "kind": "authority", "name": ""}, 422, "name"),
        (
            {"id": "new-one", "kind": "authority", "auth_method": "private_key_jwt"},
            422,
            "JWKS",
        ),
        (
            {
                "id": "new-one",
                "kind": "authority",
                "auth_method": "private_key_jwt",
                "jwks": "{not json",
            },
            422,
            "not valid JSON",
        ),
    ],
)
def test_bad_registrations_are_refused_on_the_form(
    browser: TestClient, ops_hub: Any, form: dict[str, Any], status: int, says: str
) -> None:
    token = login(browser, "admin@duisburg.de")
    partners, clients = count(ops_hub, Partner), count(ops_hub, OAuthClient)
    data = {"name": "Neu", "scopes": ["inbox:read"], **form, "csrf_token": token}
    r = browser.post("/staff/partners", data=data)
    assert r.status_code == status, r.text
    assert says in r.text and 'action="/staff/partners"' in r.text
    if form["id"] != "Bad ID":
        assert f'value="{form["id"]}"' in r.text, "the form keeps what was typed"
    assert (count(ops_hub, Partner), count(ops_hub, OAuthClient)) == (partners, clients)
    assert not [a for a in audit_actions(ops_hub) if a[1] == "staff.partner_registered"]


def test_rotate_then_revoke_the_old_credentials(
    browser: TestClient, ops_hub: Any, partners: Any
) -> None:
    old = partners.creds["ude"]
    token = login(browser, "admin@duisburg.de")
    rotated = browser.post("/staff/partners/ude/rotate", data={"csrf_token": token})
    assert rotated.status_code == 200, rotated.text
    assert "nur jetzt angezeigt" in rotated.text
    new_id, new_secret = created_credentials(rotated.text)
    assert new_id != old["client_id"]
    assert token_status(browser, new_id, new_secret) == 200
    assert token_status(browser, old["client_id"], old["client_secret"]) == 200, "still valid"
    with ops_hub.session_factory() as session:
        copied = session.get(OAuthClient, new_id).scope_set
        assert copied == session.get(OAuthClient, old["client_id"]).scope_set

    revoked = browser.post(
        f"/staff/partners/ude/clients/{old['client_id']}/revoke",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/staff/partners?message=ops.revoked"
    page = browser.get(revoked.headers["location"])
    assert "Zugang widerrufen" in page.text and old["client_id"] not in page.text
    assert token_status(browser, old["client_id"], old["client_secret"]) == 401
    assert token_status(browser, new_id, new_secret) == 200

    twice = browser.post(
        f"/staff/partners/ude/clients/{old['client_id']}/revoke", data={"csrf_token": token}
    )
    assert twice.status_code == 409 and "already revoked" in twice.text
    other = partners.creds["amt"]["client_id"]
    wrong = browser.post(f"/staff/partners/ude/clients/{other}/revoke", data={"csrf_token": token})
    assert wrong.status_code == 404
    assert browser.post("/staff/partners/nope/rotate", data={"csrf_token": token}).status_code == (
        404
    )
    actions = [a[1] for a in audit_actions(ops_hub)]
    assert actions.count("staff.partner_credentials_rotated") == 1
    assert actions.count("staff.partner_client_revoked") == 1
    assert new_secret not in json.dumps(audit_actions(ops_hub))


def test_switch_between_push_and_pull(browser: TestClient, ops_hub: Any) -> None:
    token = login(browser, "admin@duisburg.de")
    refused = browser.post("/staff/partners/ude/mode", data={"csrf_token": token, "mode": "push"})
    assert refused.status_code == 422 and "push mode needs endpoint_url" in refused.text
    sideways = browser.post("/staff/partners/ude/mode", data={"csrf_token": token, "mode": "up"})
    assert sideways.status_code == 422
    bad_ref = browser.post(
        "/staff/partners/ude/mode",
        data={
            "csrf_token": token,
            "mode": "push",
            "endpoint_url": "https://ude.example/hook",
            "credential_ref": "plain-secret",
        },
    )
    assert bad_ref.status_code == 422 and "credential_ref" in bad_ref.text
    with ops_hub.session_factory() as session:
        assert session.get(Partner, "ude").delivery_mode == "pull"

    incomplete = browser.post(
        "/staff/partners/ude/mode",
        data={
            "csrf_token": token,
            "mode": "push",
            "endpoint_url": "https://ude.example/hook",
            "credential_ref": "env:UDE_SECRET",
        },
    )
    assert incomplete.status_code == 422
    assert "push mode needs token_endpoint, client_id, signing_secret_ref" in incomplete.text
    pushed = browser.post(
        "/staff/partners/ude/mode",
        data={
            "csrf_token": token,
            "mode": "push",
            "endpoint_url": "https://ude.example/hook",
            "token_endpoint": "https://ude.example/oauth/token",
            "client_id": "talent-hub",
            "credential_ref": "env:UDE_SECRET",
            "signing_secret_ref": "env:UDE_SIGNING_SECRET",
        },
        follow_redirects=False,
    )
    assert pushed.status_code == 303
    page = browser.get(pushed.headers["location"])
    assert "Neustart" in page.text and 'value="https://ude.example/hook"' in page.text
    pulled = browser.post("/staff/partners/ude/mode", data={"csrf_token": token, "mode": "pull"})
    assert pulled.status_code == 200
    with ops_hub.session_factory() as session:
        ude = session.get(Partner, "ude")
        assert ude.delivery_mode == "pull"
        assert ude.connector["endpoint_url"] == "https://ude.example/hook", "kept for later"
    changes = [a[2] for a in audit_actions(ops_hub) if a[1] == "staff.partner_mode_changed"]
    assert [c["mode"] for c in changes] == ["push", "pull"]
    assert changes[0]["fields"] == [
        "client_id",
        "credential_ref",
        "endpoint_url",
        "signing_secret_ref",
        "token_endpoint",
    ]
    assert "UDE_SECRET" not in json.dumps(changes)


def test_forms_without_the_csrf_token_change_nothing(
    browser: TestClient, ops_hub: Any, partners: Any
) -> None:
    login(browser, "admin@duisburg.de")
    old = partners.creds["ude"]["client_id"]
    clients, records = count(ops_hub, OAuthClient), count(ops_hub, AuditRecord)
    posts = {
        "/staff/partners": {
            "id": "vhs",
            "name": "VHS",
            "kind": "authority",
            "scopes": "inbox:read",
        },
        "/staff/partners/ude/rotate": {},
        f"/staff/partners/ude/clients/{old}/revoke": {},
        "/staff/partners/ude/mode": {
            "mode": "push",
            "endpoint_url": "https://ude.example/hook",
        },
        "/staff/audit/verify": {},
        "/staff/deadletters/0:0/replay": {},
    }
    for path, form in posts.items():
        r = browser.post(path, data={**form, "csrf_token": "forged"})
        assert r.status_code == 403 and "Formular abgelaufen" in r.text, path
        assert browser.post(path, data=form).status_code == 403, path
    assert count(ops_hub, OAuthClient) == clients
    with ops_hub.session_factory() as session:
        assert session.get(Partner, "vhs") is None
        assert session.get(Partner, "ude").delivery_mode == "pull"
        assert session.get(OAuthClient, old).revoked_at is None
    assert count(ops_hub, AuditRecord) == records


def test_a_forged_confirmation_is_not_shown(browser: TestClient) -> None:
    login(browser, "admin@duisburg.de")
    page = browser.get("/staff/partners", params={"message": "Ihr Konto ist gesperrt"})
    assert page.status_code == 200 and "Ihr Konto ist gesperrt" not in page.text


# ---------------------------------------------------------------------- audit trail


def test_the_audit_trail_newest_first_filtered_paged_and_itself_audited(
    browser: TestClient, ops_hub: Any
) -> None:
    with unit_of_work(ops_hub.session_factory) as session:
        for i in range(60):
            record(
                session, actor_type="system", actor="test", action="test.filler", details={"i": i}
            )
        record(session, actor_type="system", actor="test", action="test.about", person_id="p_x1")
    login(browser, "dpo@duisburg.de")

    first = browser.get("/staff/audit", params={"action": "test.filler"})
    assert first.status_code == 200
    shown = [int(s) for s in re.findall(r'<td class="mono">(\d+)</td>', first.text)]
    assert len(shown) == 50 and shown == sorted(shown, reverse=True)
    older = re.search(r'href="/staff/audit\?([^"]+)" rel="next"', first.text)
    assert older, first.text
    rest = browser.get("/staff/audit?" + older.group(1).replace("&amp;", "&"))
    more = [int(s) for s in re.findall(r'<td class="mono">(\d+)</td>', rest.text)]
    assert len(more) == 10 and max(more) < min(shown)
    assert 'rel="next"' not in rest.text and "Zu den neuesten" in rest.text

    person = browser.get("/staff/audit", params={"person": "p_x1"})
    assert "test.about" in person.text and "test.filler" not in person.text
    like = browser.get("/staff/audit", params={"action": "test_"})
    assert "test.filler" not in like.text, "_ is no wildcard"

    viewed = [a for a in audit_actions(ops_hub) if a[1] == "staff.audit_viewed"]
    assert len(viewed) == 4 and viewed[0][0] == "dpo@duisburg.de"
    with ops_hub.session_factory() as session:
        about = session.scalars(
            select(AuditRecord).where(
                AuditRecord.action == "staff.audit_viewed", AuditRecord.person_id == "p_x1"
            )
        ).all()
    assert len(about) == 1, "looking at a person's records is recorded against the person"


def test_the_audit_trail_reads_as_sentences_and_filters_by_actor_and_action(
    browser: TestClient, ops_hub: Any
) -> None:
    with unit_of_work(ops_hub.session_factory) as session:
        route = {"method": "GET", "route": "/v1/referrals/{referral_id}"}
        record(session, actor_type="partner", actor="ude", action="api.call", details=route)
        record(
            session,
            actor_type="staff",
            actor="a.yilmaz@duisburg.de",
            action="staff.timeline_viewed",
            person_id="p_x2",
            purpose="residence",
            details={"purposes": ["residence"]},
        )
    login(browser, "dpo@duisburg.de")
    page = browser.get("/staff/audit").text
    sentences = re.findall(r'<td class="sentence">([^<]*)', page)
    assert "Universität Duisburg-Essen, International Office hat eine Überweisung gelesen." in [
        s.strip() for s in sentences
    ]
    assert "a.yilmaz@duisburg.de hat den Verlauf der Person angesehen." in page
    assert "Aufenthaltsrecht" in page
    # The JSON is folded away: only inside <details>, never a cell of its own.
    folded = re.findall(r"<details><summary>Rohdaten</summary><code[^>]*>([^<]*)</code>", page)
    assert "&#34;route&#34;: &#34;/v1/referrals/{referral_id}&#34;" in "".join(folded)
    assert not re.search(r"<td[^>]*>\s*\{", page)

    by_ude = browser.get("/staff/audit", params={"actor": "ude"}).text
    assert (
        "Universität Duisburg-Essen, International Office hat eine Überweisung gelesen." in by_ude
    )
    assert "a.yilmaz@duisburg.de hat" not in by_ude
    viewed = browser.get("/staff/audit", params={"action": "staff.timeline_viewed"}).text
    assert "a.yilmaz@duisburg.de hat den Verlauf der Person angesehen." in viewed
    assert "Office hat eine Überweisung gelesen" not in viewed
    assert '<option value="staff.timeline_viewed" selected>' in viewed
    english = browser.get("/staff/lang/en?next=/staff/audit").text
    assert "Universität Duisburg-Essen, International Office read a referral." in english
    assert "Residence law" in english


def test_verify_the_log(browser: TestClient, ops_hub: Any) -> None:
    token = login(browser, "dpo@duisburg.de")
    build_sequencer(ops_hub).step()
    ok = browser.post("/staff/audit/verify", data={"csrf_token": token})
    assert ok.status_code == 200
    checked = re.search(r"Protokoll unverändert: (\d+) Einträge gegen (\d+) signierte", ok.text)
    assert checked and int(checked.group(1)) > 0 and int(checked.group(2)) == 1
    assert [a[1] for a in audit_actions(ops_hub, "staff.audit_")][-2:] == [
        "staff.audit_verified",
        "staff.audit_viewed",
    ]
    with unit_of_work(ops_hub.session_factory) as session:
        session.execute(
            update(AuditRecord).where(AuditRecord.seq == 1).values(actor="someone else")
        )
    bad = browser.post("/staff/audit/verify", data={"csrf_token": token})
    assert bad.status_code == 200
    assert "NICHT unverändert" in bad.text
    assert "leaf 0 (seq 1): content does not match its leaf hash" in bad.text


def letter(event_id: str, *, offset: int = 0, recipient: str = "ude") -> DeadLetter:
    """A dead letter as the delivery consumer writes it for a rejected push delivery."""
    topic = f"hub.deliveries.{recipient}.v1"
    return DeadLetter(
        id=f"0:{offset}",
        event_id=event_id,
        event_type="de.duisburg.talenthub.referral.status-changed.v1",
        original_topic=topic,
        recipient=recipient,
        reason="HTTP 422 <rejected>",
        consumer=f"delivery.{recipient}",
        headers=[("ce_id", event_id.encode()), ("ce_recipient", recipient.encode())],
        key=b"p_1",
        value=b'{"event_id": "x"}',
    )


def test_replay_a_dead_letter_once_per_click_and_audited(
    browser: TestClient, ops_hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka faked: the letters as read_all returns them; the replay as the CLI does it."""
    ops_hub.settings.kafka_bootstrap_servers = "kafka.test:9092"
    waiting, done = str(uuid.uuid4()), str(uuid.uuid4())
    letters = [letter(waiting, offset=0), letter(done, offset=1)]
    monkeypatch.setattr(deliveries, "probe", lambda *_a, **_k: True)
    monkeypatch.setattr(dlq, "read_all", lambda bootstrap, settings, **_k: letters)
    with unit_of_work(ops_hub.session_factory) as session:
        session.add(ProcessedEvent(consumer="delivery.ude", event_id=done))
    token = login(browser, "lead@duisburg.de")

    page = browser.get("/staff/deliveries")
    assert "HTTP 422 &lt;rejected&gt;" in page.text and "inzwischen verarbeitet" in page.text
    assert "/staff/deadletters/0%3A0/replay" in page.text
    assert "/staff/deadletters/0%3A1/replay" not in page.text, "delivered since: no button"

    for replay in (1, 2):
        r = browser.post(
            "/staff/deadletters/0%3A0/replay", data={"csrf_token": token}, follow_redirects=False
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/staff/deliveries?message=ops.replayed"
        with ops_hub.session_factory() as session:
            rows = session.scalars(select(OutboxEvent).where(OutboxEvent.event_id == waiting))
            assert [(x.replay, x.topic) for x in rows][-1] == (replay, "hub.deliveries.ude.v1")
    shown = browser.get(r.headers["location"])
    assert "erneut gesendet" in shown.text and "2-mal erneut gesendet" in shown.text
    replayed = [a for a in audit_actions(ops_hub) if a[1] == "staff.deadletter_replayed"]
    assert [(a[0], a[2]["letter_id"], a[2]["replay"]) for a in replayed] == [
        ("lead@duisburg.de", "0:0", 1),
        ("lead@duisburg.de", "0:0", 2),
    ]

    assert browser.post(
        "/staff/deadletters/9:9/replay", data={"csrf_token": token}
    ).status_code == (404)
    with unit_of_work(ops_hub.session_factory) as session:
        session.get(Partner, "ude").active = False
    refused = browser.post("/staff/deadletters/0:0/replay", data={"csrf_token": token})
    assert refused.status_code == 409 and "no longer registered" in refused.text
