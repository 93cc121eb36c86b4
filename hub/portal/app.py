"""Wiring Mein Verfahren into the gateway: routes, assets, the answers to its exceptions.

Installed only when ``HUB_CLIENT_VIEW_ENABLED`` is on (the default); off, every path under
``/mein-verfahren`` is an ordinary 404. Security headers come from the staff UI's
middleware (hub.web.app.StaffHeaders), which covers both prefixes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hub.portal import citizen, routes
from hub.portal.pages import PREFIX, FormRefused, NotSignedIn, render
from hub.portal.routes import ProofNotFound
from hub.web.login import LoginThrottle

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add Mein Verfahren to the gateway app."""
    app.state.client_throttle = LoginThrottle(routes.ATTEMPTS_PER_MINUTE)
    app.include_router(routes.router)
    app.include_router(citizen.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="portal-static")
    app.add_exception_handler(NotSignedIn, _not_signed_in)  # type: ignore[arg-type]
    app.add_exception_handler(FormRefused, _form_refused)  # type: ignore[arg-type]
    app.add_exception_handler(ProofNotFound, _proof_not_found)  # type: ignore[arg-type]

    @app.get(PREFIX, include_in_schema=False)
    def without_slash() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=303)


def portal_error(request: Request, status: int) -> Response:
    """A page in the client's language for a path or input the portal cannot serve."""
    message = "error.notfound" if status in (404, 405) else "error.title"
    return render(request, "message.html", client=None, message=message, status_code=status)


async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    # The start page says whether a session ended and forgets its cookie (routes.home).
    return RedirectResponse(PREFIX + "/", status_code=303)


async def _form_refused(request: Request, exc: FormRefused) -> Response:
    return render(request, "message.html", client=None, message="error.csrf", status_code=403)


async def _proof_not_found(request: Request, exc: ProofNotFound) -> Response:
    return render(
        request, "message.html", client=exc.client, message="error.notfound", status_code=404
    )
