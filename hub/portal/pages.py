"""What every portal page shares: templates, the client's language, the session, CSRF."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.consent.models import Consent
from hub.portal import sessions
from hub.portal.sessions import Client
from hub.portal.words import LANGUAGES, Words, fixed_texts, from_accept_language, pick

PREFIX = "/mein-verfahren"
SESSION_COOKIE = "hub_client"
LANG_COOKIE = "hub_mv_lang"
START_CSRF_COOKIE = "hub_mv_csrf"
CSRF_FIELD = "csrf_token"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.autoescape = True


class NotSignedIn(Exception):
    """No live client session: the answer is the start page."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__("not signed in")
        self.expired = expired


class FormRefused(Exception):
    """A form without the right CSRF token."""


def language_of(request: Request, client: Client | None = None) -> str:
    """The client's choice, else the language of their invite or consent, else the browser's."""
    return (
        pick(request.cookies.get(LANG_COOKIE))
        or (client.language if client else None)
        or from_accept_language(request.headers.get("accept-language"))
        or "de"
    )


def notice_language(session: Session, person_id: str) -> str | None:
    """The language the person's newest consent notice was given in, if shipped here."""
    tag = session.scalar(
        select(Consent.notice_language)
        .where(Consent.person_id == person_id)
        .order_by(Consent.recorded_at.desc())
        .limit(1)
    )
    return pick(tag)


def client_of(request: Request, session: Session, now: Any) -> Client:
    """The signed-in client, or NotSignedIn (``expired`` when a cookie was there)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn
    client = sessions.load(session, token=token, now=now)
    if client is None:
        raise NotSignedIn(expired=True)
    return client


def check_form(client: Client, sent: str) -> None:
    """Refuse a form whose CSRF token is not the session's."""
    if not sent or not hmac.compare_digest(sent.encode(), client.csrf_token.encode()):
        raise FormRefused


def render(
    request: Request,
    template: str,
    *,
    client: Client | None,
    status_code: int = 200,
    csrf_token: str = "",
    **context: Any,
) -> HTMLResponse:
    """A page in the client's language."""
    words = Words(language_of(request, client))
    here = request.url.path
    return templates.TemplateResponse(
        request,
        template,
        {
            "w": words,
            "t": words.t,
            "lang": words.language,
            "dir": "rtl" if words.rtl else "ltr",
            "client": client,
            "csrf_token": client.csrf_token if client else csrf_token,
            "prefix": PREFIX,
            "here": here,
            "languages": [
                (code, fixed_texts(code).get("language.name", code)) for code in LANGUAGES
            ],
            **context,
        },
        status_code=status_code,
    )


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None,
    strict: bool = False,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=request.app.state.settings.staff_cookie_secure,
        httponly=True,
        samesite="strict" if strict else "lax",
    )


def safe_next(target: str) -> str:
    """Only paths inside the portal: an open redirect would help phishing."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"
