"""The gateway's FastAPI application: partner API, OAuth endpoints and health."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from connectors.egress import EgressPolicy, guarded_client
from hub import health, telemetry
from hub.api import contracts, openapi, problems, throttle
from hub.api.limits import BodyLimit, JsonLimit
from hub.api.ratelimit import Limits
from hub.audit import routes as audit_routes
from hub.auth import routes as auth_routes
from hub.auth.deps import new_session
from hub.auth.keys import SigningKeys
from hub.auth.tokens import JWKS_FETCH_TIMEOUT_SECONDS, build_token_validator
from hub.bootstrap import Hub
from hub.commits import CommitGroup
from hub.consent import routes as consent_routes
from hub.inbox import routes as inbox_routes
from hub.referrals import inbound_routes
from hub.referrals import routes as referral_routes
from hub.settings import Settings
from hub.timeline import routes as timeline_routes
from hub.web import app as web

DESCRIPTION = """\
Talent Hub exchanges referrals and status messages between the Amt für Integration und
Einwanderungsservice, the Universität Duisburg-Essen, the chambers and the Jobcenter.

Authenticate with OAuth 2.0 client credentials at `/oauth/token`; send the access token as
`Authorization: Bearer …`. Errors of the API are RFC 9457 problem documents; errors of
`/oauth/token` are RFC 6749 §5.2 JSON (`error`, `error_description`).
"""


#: FastAPI's own OpenTelemetry support, switched off: :func:`create_app` instruments the app.
NO_NATIVE_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,  # not even from FASTAPI_OTEL_AUTO_CONFIGURE: hub.telemetry does
}


def create_app(hub: Hub, *, kafka_check: Callable[[], bool]) -> FastAPI:
    """The gateway app for one process's wired parts."""
    app = FastAPI(
        title="Talent Hub partner API",
        version="1.0.0",
        description=DESCRIPTION,
        # The hub instruments the app itself, with its own providers (below). FastAPI's own
        # telemetry would add a second server span under OpenTelemetry's global providers
        # (opentelemetry-instrument), and asks whether they are set on every request.
        telemetry=NO_NATIVE_TELEMETRY,
        **docs_urls(hub.settings),
    )
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
        # External issuers' JWKS: only URLs the profile's egress policy allows (SSRF).
        http=guarded_client(
            EgressPolicy.for_profile(hub.settings.profile), timeout=JWKS_FETCH_TIMEOUT_SECONDS
        ),
    )
    app.state.kafka_check = health.KafkaCheck(kafka_check)
    app.state.commit_group = commit_group(app, hub.settings)
    problems.install(app)
    # Each middleware added wraps the ones before: BodyLimit, then Throttle, then JsonLimit.
    app.add_middleware(JsonLimit)
    throttle.install(app, Limits.from_settings(hub.settings))
    app.add_middleware(BodyLimit, max_bytes=hub.settings.max_body_bytes)
    for module in (
        auth_routes,
        referral_routes,
        inbound_routes,
        consent_routes,
        inbox_routes,
        timeline_routes,
        health,
        audit_routes,
        contracts,
    ):
        app.include_router(module.router)
    web.install(app)
    openapi.install(app)
    if telemetry.tracing() or telemetry.measuring():
        # Without an exporter the middleware would still parse headers, build attributes and
        # wrap every send of every request, for spans and metrics nobody records. With one,
        # it also records http.server.request.duration (seconds, buckets of latency_views).
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=telemetry.tracer_provider(),
            meter_provider=telemetry.meter_provider(),
            excluded_urls="health",
        )
    return app


def commit_group(app: FastAPI, settings: Settings) -> CommitGroup | None:
    """The process's group commit for the partner API's writes; None when switched off."""
    if settings.gateway_group_commit == 1:
        return None
    return CommitGroup(
        lambda: new_session(app.state),
        most=settings.gateway_group_commit,
        lanes=settings.gateway_commit_lanes,
    )


class DocsUrls(TypedDict):
    """Where FastAPI serves the interactive docs and the OpenAPI document (None: nowhere)."""

    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def docs_urls(settings: Settings) -> DocsUrls:
    """Interactive docs and the OpenAPI document in development; none in production."""
    if settings.profile == "production":
        # Partners get the OpenAPI document with their onboarding, not from the live gateway.
        return DocsUrls(docs_url=None, redoc_url=None, openapi_url=None)
    return DocsUrls(docs_url="/docs", redoc_url="/redoc", openapi_url="/openapi.json")
