"""The gateway's FastAPI application: partner API, OAuth endpoints and health."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from hub import health
from hub.api import problems
from hub.api.limits import BodyLimit
from hub.auth import routes as auth_routes
from hub.auth.keys import SigningKeys
from hub.auth.tokens import build_token_validator
from hub.bootstrap import Hub
from hub.consent import routes as consent_routes
from hub.inbox import routes as inbox_routes
from hub.referrals import inbound_routes
from hub.referrals import routes as referral_routes
from hub.timeline import routes as timeline_routes
from hub.web import app as web

DESCRIPTION = """\
Talent Hub exchanges referrals and status messages between the Amt für Integration und
Einwanderungsservice, the Universität Duisburg-Essen, the chambers and the Jobcenter.

Authenticate with OAuth 2.0 client credentials at `/oauth/token`; send the access token as
`Authorization: Bearer …`. Errors are RFC 9457 problem documents.
"""


def create_app(hub: Hub, *, kafka_check: Callable[[], bool]) -> FastAPI:
    """The gateway app for one process's wired parts."""
    app = FastAPI(title="Talent Hub partner API", version="1.0.0", description=DESCRIPTION)
    app.state.hub = hub
    app.state.settings = hub.settings
    app.state.session_factory = hub.session_factory
    app.state.catalogue = hub.catalogue
    app.state.policy = hub.policy
    app.state.signing_keys = SigningKeys()
    app.state.token_validator = build_token_validator(
        settings=hub.settings,
        session_factory=hub.session_factory,
        signing_keys=app.state.signing_keys,
    )
    app.state.kafka_check = health.KafkaCheck(kafka_check)
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=hub.settings.max_body_bytes)
    for module in (
        auth_routes,
        referral_routes,
        inbound_routes,
        consent_routes,
        inbox_routes,
        timeline_routes,
        health,
    ):
        app.include_router(module.router)
    web.install(app)
    return app
