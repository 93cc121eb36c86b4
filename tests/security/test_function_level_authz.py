"""Function-level authorization: every route of the app declares who may call it.

The checker walks ``app.routes`` (included routers and mounted apps resolved) and inspects
each route's dependency tree. Partner API routes need a dependency made by
``hub.auth.deps.require_scope``, ``hub.api.deps.caller`` or ``hub.api.deps.writing_caller``;
staff routes need ``current_staff`` (through ``require``, ``posting`` or ``check_csrf``), and
state-changing staff routes the CSRF check as well.
Mein Verfahren's routes open their unit of work first and ask ``hub.portal.pages.client_of``
for the client's session inside it (so that an expired session is deleted): the checker
reads the handler's code, and that of the module's helpers it calls, for that call, and
for ``check_form`` on a state-changing route. Everything else must be on the allow-list
below, with the reason it may be public.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from hub.api.deps import caller, writing_caller
from hub.app import create_app
from hub.auth.deps import get_session, require_scope
from hub.auth.scopes import SCOPES
from hub.bootstrap import Hub
from hub.db import unit_of_work, utcnow
from hub.portal.pages import client_of
from hub.web import accounts
from hub.web.accounts import Staff
from hub.web.pages import LANG_COOKIE, SESSION_COOKIE, check_csrf, current_staff, posting, require
from tests.hubtest import Partners
from tests.security.support import (
    AUDIT_TABLES,
    app_routes,
    assert_problem,
    bearer,
    changes,
    dependency_calls,
    partner_requests,
    path_params,
    problem_failure,
    seed_world,
    snapshot,
)
from tests.staffweb import staff_client

PARTNER_PREFIX = "/v1/"
STAFF_PREFIX = "/staff"
PORTAL_PREFIX = "/mein-verfahren"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: (method, path) -> why the route may be called without a token or staff session.
#: A mount is listed with the method "MOUNT".
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): "the API description partners build clients from; no data",
    ("GET", "/asyncapi.json"): "the Kafka contract partners build consumers from; no data",
    ("GET", "/schemas/{name}"): "the JSON Schemas that events' ce_dataschema names; no data",
    ("GET", "/docs"): "Swagger UI over the public API description (no data, no calls of its own)",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI helper page for its OAuth flow; static",
    ("GET", "/redoc"): "ReDoc over the public API description; static",
    ("POST", "/oauth/token"): "the token endpoint: clients authenticate in the request itself",
    ("GET", "/.well-known/oauth-authorization-server"): "RFC 8414 metadata is public by design",
    ("GET", "/.well-known/jwks.json"): "the public keys that verify our tokens (RFC 7517)",
    ("GET", "/audit/v1/checkpoint"): "the audit log's newest signed tree head: sizes and hashes",
    ("GET", "/audit/v1/keys"): "the audit log's public verifier keys",
    ("GET", "/health"): "monitoring: tells only ok / down per dependency, nothing else",
    ("GET", "/health/ready"): "readiness probe: ok / down of the database, nothing else",
    ("GET", "/health/live"): "liveness probe: a constant answer",
    ("GET", "/"): "redirects to the staff UI, which asks for a login",
    ("GET", "/staff/login"): "the login form",
    ("POST", "/staff/login"): "the login itself (login-CSRF cookie, throttle, lockout inside)",
    ("GET", "/staff/lang/{lang}"): "sets the language cookie only",
    ("GET", "/staff/login/oidc"): "starts the city IdP login (state, nonce and PKCE inside)",
    ("GET", "/staff/login/oidc/callback"): "IdP redirect target: checks state and the ID token",
    ("MOUNT", "/staff/static"): "the staff UI's CSS, scripts and icons; no data",
    ("GET", "/mein-verfahren"): "redirects to /mein-verfahren/",
    ("POST", "/mein-verfahren/"): "the sign-in itself (form-token cookie, throttle, code limits)",
    ("GET", "/mein-verfahren/sprache/{lang}"): "sets the language cookie only",
    ("GET", "/mein-verfahren/buergerkonto"): "starts the citizen login (state, nonce, PKCE)",
    ("GET", "/mein-verfahren/buergerkonto/antwort"): "IdP redirect target: checks state and token",
    ("MOUNT", "/mein-verfahren/static"): "the portal's CSS and scripts; no data",
}

#: The scope each partner route demands: a wrong or dropped scope fails here.
EXPECTED_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/v1/referrals"): "referrals:write",
    ("GET", "/v1/referrals"): "referrals:read",
    ("GET", "/v1/referrals/{referral_id}"): "referrals:read",
    ("POST", "/v1/referrals/{referral_id}/status"): "status:write",
    # each native operation then checks referrals:write or status:write as well
    ("POST", "/v1/connectors/{kind}/messages"): "referrals:read",
    ("POST", "/v1/consents"): "consent:write",
    ("GET", "/v1/people/{person_id}/consents"): "consent:read",
    ("POST", "/v1/consents/{consent_id}/withdraw"): "consent:write",
    ("GET", "/v1/inbox"): "inbox:read",
    ("POST", "/v1/inbox/{event_id}/ack"): "inbox:read",
    ("GET", "/v1/people/{person_id}/timeline"): "timeline:read",
}

# The dependencies that check a token's scope: ``require_scope``'s, and ``caller``'s and
# ``writing_caller``'s, which check it themselves (hub.api.deps) and give the calling partner.
_SCOPE_CODES = {
    require_scope("probe").__code__,
    caller("probe").__code__,
    writing_caller("probe").__code__,
}
_ROLE_CODES = {require("probe").__code__, posting("probe").__code__}
_STAFF_CALLS = {current_staff, check_csrf}


def _is_scope_check(call: Any) -> bool:
    return getattr(call, "__code__", None) in _SCOPE_CODES


def _is_staff_check(call: Any) -> bool:
    return call in _STAFF_CALLS or getattr(call, "__code__", None) in _ROLE_CODES


def scopes_of(dependant: Any) -> set[str]:
    """The scopes the route's scope-checking dependencies demand."""
    return {
        inspect.getclosurevars(call).nonlocals["scope"]
        for call in dependency_calls(dependant)
        if _is_scope_check(call)
    }


def _verbs(methods: frozenset[str]) -> list[str]:
    # Starlette adds HEAD to every GET route; it runs the GET handler.
    return sorted(m for m in methods if not (m == "HEAD" and "GET" in methods)) or ["MOUNT"]


def _client_checks(endpoint: Callable[..., Any]) -> tuple[bool, bool]:
    """Whether a portal handler (or a helper of its module it calls) checks the client's
    session, and whether it checks the form token."""
    source = inspect.getsource(endpoint)
    module = inspect.getmodule(endpoint)
    for name in set(re.findall(r"\b(_[a-z]\w*)\(", source)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper):
            source += inspect.getsource(helper)
    return "client_of(" in source, "check_form(" in source


def unprotected_routes(app: FastAPI) -> list[str]:
    """What is wrong with the app's routes: one line per unprotected or misprotected route."""
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    for route in app_routes(app):
        calls = list(dependency_calls(route.dependant))
        scoped = any(_is_scope_check(c) for c in calls)
        staff = any(_is_staff_check(c) for c in calls)
        csrf = check_csrf in calls
        for verb in _verbs(route.methods):
            key = (verb, route.path)
            seen.add(key)
            label = f"{verb} {route.path}"
            if key in PUBLIC:
                continue
            if route.path.startswith(PARTNER_PREFIX):
                if not scoped:
                    found.append(f"{label}: partner route without a require_scope dependency")
            elif route.path == STAFF_PREFIX or route.path.startswith(STAFF_PREFIX + "/"):
                if not staff:
                    found.append(f"{label}: staff route without current_staff/require/posting")
                elif verb in UNSAFE and not csrf:
                    found.append(f"{label}: state-changing staff route without check_csrf")
            elif route.path == PORTAL_PREFIX or route.path.startswith(PORTAL_PREFIX + "/"):
                endpoint = getattr(route.dependant, "call", None)
                signed, form = _client_checks(endpoint) if endpoint else (False, False)
                if not signed:
                    found.append(f"{label}: portal route without client_of (the session)")
                elif verb in UNSAFE and not form:
                    found.append(f"{label}: state-changing portal route without check_form")
            else:
                found.append(f"{label}: no auth dependency and not on the public allow-list")
    found += [f"{m} {p}: on the public allow-list but gone" for m, p in sorted(set(PUBLIC) - seen)]
    return found


def test_every_route_has_explicit_authorization(app: FastAPI) -> None:
    assert unprotected_routes(app) == []


def test_partner_routes_demand_the_expected_scope(app: FastAPI) -> None:
    actual = {
        (verb, r.path): scopes_of(r.dependant)
        for r in app_routes(app)
        if r.path.startswith(PARTNER_PREFIX)
        for verb in _verbs(r.methods)
    }
    assert {k: {v} for k, v in EXPECTED_SCOPES.items()} == actual
    assert set(EXPECTED_SCOPES.values()) <= set(SCOPES)


def test_the_checker_reports_routes_added_without_auth(hub: Hub) -> None:
    """A route added without auth fails the test above: shown on a fresh app."""
    app = create_app(hub, kafka_check=lambda: True)
    assert unprotected_routes(app) == []

    @app.get("/v1/unprotected")
    def unprotected() -> dict[str, str]:
        return {}

    @app.get("/v1/session-only")
    def session_only(session: Any = Depends(get_session)) -> dict[str, str]:
        return {}

    @app.get("/v1/staff-cookie")
    def staff_cookie_on_the_partner_api(staff: Staff = Depends(current_staff)) -> dict[str, str]:
        return {}

    @app.post("/staff/no-csrf")
    def no_csrf(staff: Staff = Depends(require("admin"))) -> dict[str, str]:
        return {}

    @app.get("/export")
    def export() -> dict[str, str]:
        return {}

    nested = APIRouter(prefix="/v1/nested")

    @nested.delete("/{thing_id}")
    def delete_thing(thing_id: str) -> None:
        return None

    app.include_router(nested)
    sub = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @sub.get("/items")
    def items() -> list[str]:
        return []

    app.mount("/staff/sub", sub)

    @app.get("/mein-verfahren/everything")
    def portal_without_session() -> dict[str, str]:
        return {}

    @app.post("/mein-verfahren/forget")
    def portal_form_without_token(request: Any) -> dict[str, str]:
        client_of(request, None, None)
        return {}

    assert unprotected_routes(app) == [
        "GET /v1/unprotected: partner route without a require_scope dependency",
        "GET /v1/session-only: partner route without a require_scope dependency",
        "GET /v1/staff-cookie: partner route without a require_scope dependency",
        "POST /staff/no-csrf: state-changing staff route without check_csrf",
        "GET /export: no auth dependency and not on the public allow-list",
        "DELETE /v1/nested/{thing_id}: partner route without a require_scope dependency",
        "GET /staff/sub/items: staff route without current_staff/require/posting",
        "GET /mein-verfahren/everything: portal route without client_of (the session)",
        "POST /mein-verfahren/forget: state-changing portal route without check_form",
    ]


# ---------------------------------------------------------------------- the same, over HTTP


def test_partner_routes_refuse_a_missing_token_and_a_missing_scope(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    """Generated from the routes: every partner route, without a token and without its scope."""
    world = seed_world(client, partners, hub)
    requests = partner_requests(world)
    routes = {
        (verb, r.path)
        for r in app_routes(client.app)
        if r.path.startswith(PARTNER_PREFIX)
        for verb in _verbs(r.methods)
    }
    assert set(requests) == routes, "add a request for the new partner route"
    tokens = {
        scope: partners.token(client, "ude", " ".join(s for s in SCOPES if s != scope))
        for scope in SCOPES
    }
    before = snapshot(hub)
    failures = []
    for (verb, template), (path, body) in sorted(requests.items()):
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        anonymous = client.request(verb, path, **kwargs)
        failures.append(problem_failure(anonymous, 401))
        if not anonymous.headers.get("www-authenticate", "").startswith("Bearer"):
            failures.append(f"{verb} {path}: 401 without a Bearer challenge")
        lacking = tokens[EXPECTED_SCOPES[(verb, template)]]
        refused = client.request(verb, path, headers=bearer(lacking), **kwargs)
        failures.append(problem_failure(refused, 403))
        if refused.status_code == 403 and refused.json().get("error") != "insufficient_scope":
            failures.append(f"{verb} {path}: 403 without error=insufficient_scope")
    assert [f for f in failures if f] == []
    assert changes(before, snapshot(hub)) == {}

    # The native route's own check: a status message needs status:write, not just the route's.
    path, body = requests[("POST", "/v1/connectors/{kind}/messages")]
    read_only = partners.token(client, "ude", "referrals:read")
    assert_problem(client.post(path, json=body, headers=bearer(read_only)), 403)
    assert changes(before, snapshot(hub)) == {}


def _staff_session(hub: Hub, role: str) -> str:
    purposes = ["residence"] if role in ("caseworker", "team_lead") else []
    with unit_of_work(hub.session_factory) as session:
        account = accounts.add_staff(
            session, email=f"{role}@duisburg.de", role=role, purposes=purposes, password=None
        )
        return accounts.start_session(session, account=account, now=utcnow())


def test_staff_routes_need_a_session_and_forms_the_csrf_token(hub: Hub) -> None:
    """Generated from the routes: no session -> the login page; no CSRF token -> 403."""
    with staff_client(hub) as browser:
        routes = [
            (verb, r.path)
            for r in app_routes(browser.app)
            if r.path.startswith(STAFF_PREFIX)
            for verb in _verbs(r.methods)
            if (verb, r.path) not in PUBLIC
        ]
        token = _staff_session(hub, "admin")
        before = snapshot(hub, skip=AUDIT_TABLES | {"staff_sessions"})
        failures = []
        for verb, template in routes:
            path = template
            for name in path_params(template):
                path = path.replace("{" + name + "}", "x")
            anonymous = browser.request(verb, path, follow_redirects=False)
            location = anonymous.headers.get("location", "")
            if anonymous.status_code != 303 or not location.startswith("/staff/login"):
                failures.append(f"{verb} {path} without a session: {anonymous.status_code}")
            if verb in UNSAFE:
                forged = browser.request(
                    verb,
                    path,
                    data={"csrf_token": "guessed"},
                    headers={"Cookie": f"{SESSION_COOKIE}={token}; {LANG_COOKIE}=en"},
                    follow_redirects=False,
                )
                if forged.status_code != 403 or "Form expired" not in forged.text:
                    failures.append(f"{verb} {path} without CSRF token: {forged.status_code}")
        assert failures == []
        assert len(routes) >= 20
        after = snapshot(hub, skip=AUDIT_TABLES | {"staff_sessions"})
        assert changes(before, after) == {}
