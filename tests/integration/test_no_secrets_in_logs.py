"""No token, secret or password reaches the logs, even with every logger at DEBUG.

A realistic run: partners get tokens (client secret and private_key_jwt), create and work on
referrals; the hub pushes them to partner simulators with OAuth tokens from the simulators'
own token endpoints; staff log in with a password and through the city's OpenID provider;
someone guesses credentials. Everything any logger says goes through the hub's log handler,
in both formats. Then every credential used in the run is searched for in that text.
"""

from __future__ import annotations

import base64
import io
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select

from connectors.simulator import SimulatorState
from hub import logs
from hub.auth.keys import SigningKeys
from hub.crypto.keystore import master_keys_from
from hub.db import unit_of_work
from hub.partners.models import Partner
from hub.partners.service import add_client
from hub.web.accounts import add_staff
from hub.web.pages import SESSION_COOKIE
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims
from tests.oidc_provider import OidcProvider, User
from tests.staffweb import PASSWORD, log_in, staff_client

pytestmark = pytest.mark.integration

#: Loggers of the libraries that see credentials: forced to DEBUG whatever the hub sets.
LIBRARIES = ("kafka", "httpx", "httpcore", "hpack", "authlib", "sqlalchemy", "uvicorn", "hub")
OIDC_CLIENT_SECRET = "oidc-client-secret-" + uuid.uuid4().hex
STAFF_EMAIL = "a.yilmaz@stadt-duisburg.de"
CALLBACK = "https://testserver/staff/login/oidc/callback"

RECOGNITION = {
    "type": "recognition.assessment",
    "performer": "ihk-fosa",
    "person": {"given_name": "Arjun", "family_name": "Sharma", "birth_date": "1994-07-12"},
    "payload": {"reference_occupation": "Elektroniker/in"},
}


class Secrets:
    """Every credential the run used, in the forms a log line could carry it."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, name: str, value: str | None) -> None:
        if value:
            assert len(value) >= 8, f"{name} is too short to search for reliably"
            self.values[name] = value

    def forms(self) -> Iterator[tuple[str, str]]:
        """Each secret, encoded as URLs carry it, and distinctive pieces of it: SQLAlchemy, for
        one, shortens long parameters, which would hide a secret from a search for all of it."""
        for name, value in self.values.items():
            yield name, value
            for encoded in (quote(value, safe=""), quote_plus(value)):
                if encoded != value:
                    yield f"{name} (url-encoded)", encoded
            if value.count(".") == 2 and value.startswith("eyJ"):  # a JWT: its signature
                signature = value.rsplit(".", 1)[1]
                if len(signature) >= 16:
                    yield f"{name} (signature)", signature[:16]
            elif len(value) >= 20 and " " not in value:  # random: its first and last 12
                yield f"{name} (start)", value[:12]
                yield f"{name} (end)", value[-12:]


@pytest.fixture
def debug_logs() -> Iterator[io.StringIO]:
    """The hub's logging at DEBUG, both formats, with every library forced to DEBUG too."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    root.addHandler(logs.handler("text", stream))
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.handlers[:], root.level = saved
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def fetched_tokens(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every token answer an OAuth client of the hub received (partners' and the city's)."""
    answers: list[dict[str, Any]] = []
    fetch = OAuth2Client.fetch_token

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = fetch(self, *args, **kwargs)
        answers.append(dict(answer))
        return answer

    monkeypatch.setattr(OAuth2Client, "fetch_token", recording)
    return answers


@pytest.fixture
def issued_by_simulators(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    issued: list[str] = []
    issue = SimulatorState.issue_token

    def recording(self: SimulatorState) -> str:
        issued.append(issue(self))
        return issued[-1]

    monkeypatch.setattr(SimulatorState, "issue_token", recording)
    return issued


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    with OidcProvider(
        client_id="talent-hub",
        client_secret=OIDC_CLIENT_SECRET,
        redirect_uris=[CALLBACK],
        user=User(email=STAFF_EMAIL, sub="city-4711"),
    ) as provider:
        yield provider


def test_no_secret_reaches_the_logs(
    debug_logs: io.StringIO,
    running: Running,
    fetched_tokens: list[dict[str, Any]],
    issued_by_simulators: list[str],
    idp: OidcProvider,
) -> None:
    secrets = Secrets()
    sims = start_sims(running, ["amt", "ihk-fosa"])
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    start_delivery(running)
    try:
        partner_api_flow(running, secrets)
        wait_for_deliveries(sims)
        staff_flow(running, idp, secrets)
    finally:
        for sim in sims.values():
            sim.server.stop()

    collect_hub_secrets(running, sims, secrets)
    for n, answer in enumerate(fetched_tokens):
        for field in ("access_token", "refresh_token", "id_token"):
            secrets.add(f"fetched {field} #{n}", answer.get(field))
    for n, token in enumerate(issued_by_simulators):
        secrets.add(f"simulator token #{n}", token)
    assert issued_by_simulators, "the hub fetched tokens from the simulators"
    assert any("id_token" in a for a in fetched_tokens), "the OIDC login fetched an ID token"

    text = debug_logs.getvalue()
    assert len(text) > 10_000, "the run was logged at DEBUG"
    assert "HTTP Request: POST" in text, "httpx logged the hub's outgoing requests"
    assert "INSERT INTO" in text, "SQLAlchemy logged statements and parameters"
    assert '"logger": "kafka.' in text, "the Kafka client logged"
    leaks = sorted({name for name, form in secrets.forms() if form in text})
    assert leaks == [], f"secrets in the logs: {leaks}"


def partner_api_flow(running: Running, secrets: Secrets) -> None:
    """Tokens by secret and by private_key_jwt, referrals, status changes, guesses."""
    creds = running.partners.creds
    for pid in ("ude", "amt", "jobcenter", "ihk-fosa"):
        secrets.add(f"{pid} client secret", creds[pid]["client_secret"])
        client_id, secret = creds[pid]["client_id"], creds[pid]["client_secret"]
        secrets.add(
            f"{pid} basic credentials", base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        )
    with api_client(running.hub) as client:
        tokens = {pid: token(client, creds[pid], secrets) for pid in ("ude", "amt", "ihk-fosa")}
        tokens["hwk"] = jwt_client_token(client, running, secrets)
        bearer = {pid: {"Authorization": f"Bearer {t}"} for pid, t in tokens.items()}

        referral = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=bearer["ude"])
        assert referral.status_code == 202, referral.text
        rid, person = referral.json()["id"], referral.json()["person_id"]
        r = client.post("/v1/referrals", json=RECOGNITION, headers=bearer["amt"])
        assert r.status_code == 202, r.text
        assert client.get(f"/v1/referrals/{rid}", headers=bearer["amt"]).status_code == 200
        accepted = {"status": "accepted"}
        r = client.post(f"/v1/referrals/{rid}/status", json=accepted, headers=bearer["amt"])
        assert r.status_code == 200, r.text
        assert client.get(f"/v1/people/{person}/timeline", headers=bearer["ude"]).status_code == 200
        assert client.get("/v1/referrals", headers=bearer["hwk"]).status_code == 200

        guess = "guessed-secret-" + uuid.uuid4().hex
        secrets.add("guessed client secret", guess)
        form = {"grant_type": "client_credentials"}
        wrong = client.post("/oauth/token", data=form, auth=(creds["ude"]["client_id"], guess))
        assert wrong.status_code == 401
        forged = (
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1ZGUiLCJzY29wZSI6InJlZmVycmFscyJ9." + uuid.uuid4().hex
        )
        secrets.add("forged bearer token", forged)
        r = client.get("/v1/referrals", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401


def token(client: Any, creds: dict[str, Any], secrets: Secrets) -> str:
    form = {"grant_type": "client_credentials"}
    r = client.post("/oauth/token", data=form, auth=(creds["client_id"], creds["client_secret"]))
    assert r.status_code == 200, r.text
    access = str(r.json()["access_token"])
    secrets.add(f"access token of {creds['client_id']}", access)
    return access


def jwt_client_token(client: Any, running: Running, secrets: Secrets) -> str:
    """A token for a private_key_jwt client of hwk."""
    key = ECKey.generate_key("P-256")
    secrets.add("hwk private key", str(key.as_dict(private=True)["d"]))
    with unit_of_work(running.hub.session_factory) as session:
        registered = add_client(
            session,
            partner_id="hwk",
            scopes=["referrals:read"],
            auth_method="private_key_jwt",
            jwks={"keys": [key.as_dict(private=False)]},
        )
    client_id, now = registered["client_id"], int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": running.hub.settings.resolved_issuer,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    assertion = jwt.encode({"alg": "ES256", "kid": key.thumbprint()}, claims, key)
    secrets.add("hwk client assertion", assertion)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    r = client.post("/oauth/token", data=form)
    assert r.status_code == 200, r.text
    access = str(r.json()["access_token"])
    secrets.add("hwk access token", access)
    return access


def wait_for_deliveries(sims: dict[str, Sim]) -> None:
    for sim in sims.values():
        wait_for(lambda s=sim: s.received(), timeout=60)


def staff_flow(running: Running, idp: OidcProvider, secrets: Secrets) -> None:
    """A password login, a wrong password, and a login through the city's provider."""
    hub = running.hub
    secrets.add("staff password", PASSWORD)
    secrets.add("OIDC client secret", OIDC_CLIENT_SECRET)
    with unit_of_work(hub.session_factory) as session:
        add_staff(session, email="admin@duisburg.de", role="admin", purposes=[], password=PASSWORD)
        add_staff(
            session, email=STAFF_EMAIL, role="caseworker", purposes=["residence"], password=None
        )
    hub.settings = hub.settings.model_copy(
        update={
            "staff_oidc_issuer": idp.url,
            "staff_oidc_client_id": "talent-hub",
            "staff_oidc_client_secret": OIDC_CLIENT_SECRET,
        }
    )
    with staff_client(hub) as browser:
        wrong = "wrong staff password " + uuid.uuid4().hex
        secrets.add("wrong staff password", wrong)
        assert log_in(browser, "admin@duisburg.de", wrong).status_code != 303
        r = log_in(browser, "admin@duisburg.de")
        assert r.status_code == 303, r.text
        secrets.add("password session", browser.cookies.get(SESSION_COOKIE))
        assert browser.get("/staff/partners").status_code == 200
    with staff_client(hub) as browser:
        start = browser.get("/staff/login/oidc", follow_redirects=False)
        assert start.status_code == 303, start.text
        approved = httpx.get(start.headers["location"], follow_redirects=False, timeout=10)
        callback = httpx.URL(approved.headers["location"])
        r = browser.get(f"{callback.path}?{callback.query.decode()}", follow_redirects=False)
        assert r.status_code == 303, r.text
        secrets.add("OIDC session", browser.cookies.get(SESSION_COOKIE))


def collect_hub_secrets(running: Running, sims: dict[str, Sim], secrets: Secrets) -> None:
    """The hub's own keys and the simulators' credentials it stores."""
    hub = running.hub
    with hub.session_factory() as session:
        signing = SigningKeys().current(session)
        secrets.add("hub signing key", str(signing.as_dict(private=True)["d"]))
        for partner in session.scalars(select(Partner).where(Partner.delivery_mode == "push")):
            for ref in ("credential_ref", "signing_secret_ref"):
                secrets.add(f"{partner.id} {ref}", partner.connector[ref].removeprefix("value:"))
    keys, _ = master_keys_from(hub.settings)
    for kid, key in keys.items():
        secrets.add(f"master key {kid}", base64.b64encode(key).decode())
        secrets.add(f"master key {kid} (urlsafe)", base64.urlsafe_b64encode(key).decode())
    for pid, sim in sims.items():
        secrets.add(f"{pid} simulator key", str(sim.state.key.as_dict(private=True)["d"]))
