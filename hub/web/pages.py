"""What every staff page shares: templates, language, the logged-in staff member, CSRF."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy.orm import Session

from hub.audit.service import record as audit
from hub.db import unit_of_work, utcnow
from hub.web import accounts, wording
from hub.web.accounts import Staff
from hub.web.i18n import pick_language, translate
from hub.web.wording import BERLIN as BERLIN
from hub.web.wording import PartnerNames

SESSION_COOKIE = "hub_staff"
LANG_COOKIE = "hub_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PREFIX = "/staff"
#: Roles that work with clients' personal data (the timeline and referrals).
CASE_ROLES = ("caseworker", "team_lead")

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.autoescape = True  # partner-supplied text is always shown escaped


@pass_context
def _local(context: Context, moment: datetime) -> str:
    return wording.moment(moment, context.get("lang", "de"))


@pass_context
def _day(context: Context, value: date) -> str:
    return wording.day(value, context.get("lang", "de"))


templates.env.filters["local"] = _local
templates.env.filters["day"] = _day


class LoginRequired(Exception):
    """No valid session: the answer is the login page."""


class WrongRole(Exception):
    """Logged in, but the role may not open this page: a 403 page that says so."""

    def __init__(self, staff: Staff) -> None:
        super().__init__(staff.role)
        self.staff = staff


class CsrfRefused(Exception):
    """A form without the session's CSRF token."""


def lang_of(request: Request) -> str:
    """The page language."""
    return pick_language(request.cookies.get(LANG_COOKIE))


def render(
    request: Request,
    template: str,
    *,
    staff: Staff | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page in the visitor's language, with the CSRF token for its forms."""
    lang = lang_of(request)

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    def label(kind: str, code: str | None) -> str:
        return wording.label(lang, kind, code)

    return templates.TemplateResponse(
        request,
        template,
        {
            "staff": staff,
            "lang": lang,
            "t": t,
            "label": label,
            "partner_name": partner_names(request),
            "csrf_token": staff.csrf_token if staff else getattr(request.state, "login_csrf", ""),
            "prefix": PREFIX,
            **context,
        },
        status_code=status_code,
    )


def partner_names(request: Request) -> PartnerNames:
    """The request's partner names, read from the database at most once per request."""
    names = getattr(request.state, "partner_names", None)
    if names is None:
        names = PartnerNames(request.app.state.session_factory)
        request.state.partner_names = names
    return names


def current_staff(request: Request) -> Staff:
    """The logged-in staff member, or LoginRequired."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    with unit_of_work(request.app.state.session_factory) as session:
        staff = accounts.load_session(session, token=token, now=utcnow())
    if staff is None:
        raise LoginRequired
    return staff


def require(*roles: str) -> Callable[..., Staff]:
    """A dependency admitting only the given roles."""

    def dependency(staff: Staff = Depends(current_staff)) -> Staff:
        if staff.role not in roles:
            raise WrongRole(staff)
        return staff

    return dependency


async def check_csrf(request: Request, staff: Staff = Depends(current_staff)) -> Staff:
    """Refuse a state-changing request without the session's CSRF token (form or header)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), staff.csrf_token.encode()):
        raise CsrfRefused
    return staff


def posting(*roles: str) -> Callable[..., Staff]:
    """A dependency for forms: the session's CSRF token first, then the role."""

    def dependency(staff: Staff = Depends(check_csrf)) -> Staff:
        if staff.role not in roles:
            raise WrongRole(staff)
        return staff

    return dependency


def audit_staff(
    session: Session,
    staff: Staff,
    action: str,
    *,
    person_id: str | None = None,
    purpose: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write what a staff member did or saw to the audit trail, in the caller's transaction."""
    audit(
        session,
        actor_type="staff",
        actor=staff.email,
        action=action,
        person_id=person_id,
        purpose=purpose,
        details=details,
    )


@contextmanager
def viewing(
    request: Request,
    staff: Staff,
    *,
    action: str,
    person_id: str | None = None,
    purpose: str | None = None,
    details: dict[str, Any] | None = None,
) -> Iterator[Session]:
    """A unit of work that also writes the staff view of personal data to the audit trail."""
    with unit_of_work(request.app.state.session_factory) as session:
        yield session
        audit_staff(session, staff, action, person_id=person_id, purpose=purpose, details=details)
