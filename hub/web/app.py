"""Wiring the staff UI into the gateway: routes, packaged assets, error pages, headers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api import problems
from hub.errors import HubError
from hub.web import (
    audit_trail,
    client_invites,
    clients,
    dashboard,
    deliveries,
    login,
    oidc,
    partner_admin,
    referral_pages,
    staff_admin,
)
from hub.web.pages import PREFIX, CsrfRefused, LoginRequired, WrongRole, render

PORTAL_PREFIX = "/mein-verfahren"

STATIC = Path(__file__).parent / "static"

# Scripts and styles come from our own origin only (city networks block CDNs anyway).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class StaffHeaders:
    """Security headers on every staff and Mein Verfahren page; pages with personal data are
    never cached.

    Plain ASGI: it wraps every request of the gateway, partner API calls included, which
    must not pay for a task and a re-streamed body to pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The scope's path, not a URL built from the scope (which reads every header): the
        # prefixes have none of the characters a URL would escape.
        path: str = scope["path"] if scope["type"] == "http" else ""
        if not path.startswith((PREFIX, PORTAL_PREFIX)):
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.settings
        hsts = settings.staff_cookie_secure and scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not path.startswith((PREFIX + "/static/", PORTAL_PREFIX + "/static/")):
                    headers["Cache-Control"] = "no-store"
                if hsts:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Add the staff UI to the gateway app."""
    app.state.login_throttle = login.LoginThrottle(login.LOGIN_ATTEMPTS_PER_MINUTE)
    app.include_router(login.router)
    app.include_router(clients.router)
    app.include_router(referral_pages.router)
    app.include_router(dashboard.router)
    app.include_router(deliveries.router)
    app.include_router(partner_admin.router)
    app.include_router(audit_trail.router)
    app.include_router(staff_admin.router)
    app.include_router(oidc.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="staff-static")
    if app.state.settings.client_view_enabled:
        from hub.portal import app as portal

        portal.install(app)
        app.include_router(client_invites.router)
    app.add_middleware(StaffHeaders)
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    app.add_exception_handler(WrongRole, _wrong_role)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, _csrf_refused)  # type: ignore[arg-type]
    app.add_exception_handler(HubError, _staff_or_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _staff_page_or_problem)  # type: ignore[arg-type]

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=303)


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):
        # htmx would swap the login page into a fragment; make the browser navigate instead.
        return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)


async def _wrong_role(request: Request, exc: WrongRole) -> Response:
    return render(request, "forbidden.html", staff=exc.staff, status_code=403)


async def _csrf_refused(request: Request, exc: CsrfRefused) -> Response:
    return render(request, "csrf.html", staff=None, status_code=403)


async def _staff_or_problem(request: Request, exc: HubError) -> Response:
    if (
        request.url.path.startswith(PORTAL_PREFIX)
        and request.app.state.settings.client_view_enabled
    ):
        from hub.portal.app import portal_error

        return portal_error(request, exc.status)
    if not request.url.path.startswith(PREFIX):
        return await problems.hub_error(request, exc)
    template = "notfound.html" if exc.status == 404 else "error.html"
    return render(request, template, staff=None, status_code=exc.status, detail=exc.detail)


async def _staff_page_or_problem(request: Request, exc: StarletteHTTPException) -> Response:
    if (
        request.url.path.startswith(PORTAL_PREFIX)
        and request.app.state.settings.client_view_enabled
        and exc.status_code in (404, 405)
    ):
        from hub.portal.app import portal_error

        return portal_error(request, exc.status_code)
    if not request.url.path.startswith(PREFIX) or exc.status_code != 404:
        return await problems.http_error(request, exc)
    return render(request, "notfound.html", staff=None, status_code=404, detail=request.url.path)
