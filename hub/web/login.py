"""Staff pages: login (local accounts), logout, the language switch and the start page."""

from __future__ import annotations

import secrets
import time
from collections import deque

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hub.db import unit_of_work, utcnow
from hub.web import accounts
from hub.web.accounts import Staff
from hub.web.i18n import LANGUAGES
from hub.web.pages import (
    CASE_ROLES,
    LANG_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    audit_staff,
    check_csrf,
    render,
    require,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

LOGIN_CSRF_COOKIE = "hub_login_csrf"
#: Login attempts one address may make per minute, across all accounts (against spraying).
LOGIN_ATTEMPTS_PER_MINUTE = 10


class LoginThrottle:
    """A sliding one-minute window of login attempts per client address (this process)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        window = self._seen.setdefault(address, deque())
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self._per_minute:
            return False
        window.append(now)
        return True


# ---------------------------------------------------------------------- login and language


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request.state.login_csrf = token
    response = render(request, "login.html", staff=None, next=safe_next(next), error=None)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form(""),
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    request.state.login_csrf = expected or secrets.token_urlsafe(32)
    if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
        return render(request, "csrf.html", staff=None, status_code=403)
    address = request.client.host if request.client else "unknown"
    if not request.app.state.login_throttle.allow(address):
        response = render(
            request,
            "login.html",
            staff=None,
            next=safe_next(next),
            error="login.throttled",
            status_code=429,
        )
        response.headers["Retry-After"] = "60"
        return response
    now = utcnow()
    with unit_of_work(request.app.state.session_factory) as session:
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            accounts.end_session(session, token=old)
        account = accounts.authenticate(session, email=email, password=password, now=now)
        token = accounts.start_session(session, account=account, now=now) if account else None
        _audit_login(session, account.email if account else "anonymous", ok=bool(account))
    if token is None:
        return render(
            request,
            "login.html",
            staff=None,
            next=safe_next(next),
            error="login.refused",
            status_code=401,
        )
    redirect = RedirectResponse(safe_next(next) or f"{PREFIX}/", status_code=303)
    set_cookie(request, redirect, SESSION_COOKIE, token, max_age=accounts.SESSION_HOURS * 3600)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return redirect


@router.post("/logout")
def logout(request: Request, staff: Staff = Depends(check_csrf)) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    with unit_of_work(request.app.state.session_factory) as session:
        if token:
            accounts.end_session(session, token=token)
        audit_staff(session, staff, "staff.logout")
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/lang/{lang}")
def switch_language(request: Request, lang: str, next: str = "") -> Response:
    response = RedirectResponse(safe_next(next) or f"{PREFIX}/", status_code=303)
    if lang in LANGUAGES:
        set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 86400, http_only=False)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, staff: Staff = Depends(require(*accounts.ROLES))) -> Response:
    if staff.role in CASE_ROLES:
        return RedirectResponse(f"{PREFIX}/search", status_code=303)
    target = {"dpo": "audit", "admin": "partners"}.get(staff.role, "dashboard")
    return RedirectResponse(f"{PREFIX}/{target}", status_code=303)


def _audit_login(session: Session, who: str, *, ok: bool) -> None:
    from hub.audit.service import record

    record(
        session,
        actor_type="staff",
        actor=who,
        action="staff.login" if ok else "staff.login_refused",
    )


def safe_next(target: str) -> str:
    """Only paths inside the staff UI: an open redirect would help phishing."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


def set_cookie(
    request: Request,
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=request.app.state.settings.staff_cookie_secure,
        httponly=http_only,
        samesite="strict" if name == SESSION_COOKIE else "lax",
    )
