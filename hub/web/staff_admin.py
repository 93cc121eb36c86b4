"""Staff accounts for admins: list, create, disable and enable, reset a password.

The same operations as ``hub staff …``; every change is audited with the admin as actor.
Disabling an account or resetting its password ends its sessions at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from hub.db import unit_of_work
from hub.errors import HubError, NotFound
from hub.web import accounts
from hub.web.accounts import Staff
from hub.web.i18n import add_words, translate
from hub.web.pages import PREFIX, audit_staff, lang_of, posting, render, require

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ADMIN = ("admin",)
#: Confirmations a page may show after a change.
MESSAGES = frozenset(
    {"accounts.created", "accounts.disabled", "accounts.enabled", "accounts.password_set"}
)

add_words(
    {
        "nav.accounts": ("Konten", "Accounts"),
        "accounts.title": ("Konten der Mitarbeitenden", "Staff accounts"),
        "accounts.email": ("E-Mail-Adresse", "E-mail address"),
        "accounts.role": ("Rolle", "Role"),
        "accounts.purposes": ("Aufgabenbereiche", "Purpose domains"),
        "accounts.state": ("Zustand", "State"),
        "accounts.last_login": ("Letzte Anmeldung", "Last login"),
        "accounts.never": ("nie", "never"),
        "accounts.active": ("aktiv", "active"),
        "accounts.inactive": ("deaktiviert", "disabled"),
        "accounts.locked": ("gesperrt bis {until}", "locked until {until}"),
        "accounts.oidc": (
            "Anmeldung über die städtische Anmeldung (OIDC)",
            "Login via the city's OIDC",
        ),
        "accounts.disable": ("Deaktivieren", "Disable"),
        "accounts.enable": ("Aktivieren", "Enable"),
        "accounts.new_password": (
            "Neues Passwort (mindestens 12 Zeichen)",
            "New password (at least 12 characters)",
        ),
        "accounts.set_password": ("Passwort setzen", "Set password"),
        "accounts.add": ("Konto anlegen", "Add account"),
        "accounts.password": (
            "Passwort (mindestens 12 Zeichen; leer: nur OIDC)",
            "Password (at least 12 characters; empty: OIDC only)",
        ),
        "accounts.created": ("Das Konto wurde angelegt.", "The account was created."),
        "accounts.disabled": (
            "Das Konto ist deaktiviert; seine Sitzungen sind beendet.",
            "The account is disabled; its sessions have ended.",
        ),
        "accounts.enabled": ("Das Konto ist wieder aktiv.", "The account is active again."),
        "accounts.password_set": (
            "Das Passwort ist gesetzt; alle Sitzungen des Kontos sind beendet.",
            "The password is set; all sessions of the account have ended.",
        ),
        "accounts.self": (
            "Das eigene Konto kann hier nicht deaktiviert werden.",
            "You cannot disable your own account here.",
        ),
    }
)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request, message: str = "", staff: Staff = Depends(require(*ADMIN))
) -> Response:
    return _page(request, staff, message=message if message in MESSAGES else None)


@router.post("/accounts", response_class=HTMLResponse)
def add(
    request: Request,
    email: str = Form(""),
    role: str = Form(""),
    purposes: list[str] = Form([]),
    password: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN)),
) -> Response:
    values = {"email": email, "role": role, "purposes": purposes}
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            account = accounts.add_staff(
                session, email=email, role=role, purposes=purposes, password=password or None
            )
            audit_staff(session, staff, "staff.account_created", details=_described(account))
    except HubError as exc:
        return _page(request, staff, values=values, error=exc.detail, status_code=exc.status)
    return _page(request, staff, message="accounts.created")


@router.post("/accounts/{account_id}/active", response_class=HTMLResponse)
def switch(
    request: Request,
    account_id: int,
    active: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN)),
) -> Response:
    enable = active == "on"
    if not enable and account_id == staff.id:
        refusal = translate("accounts.self", lang_of(request))
        return _page(request, staff, error=refusal, status_code=409)
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            email = accounts.email_of(session, account_id)
            account = accounts.set_active(session, email=email, active=enable)
            action = "staff.account_enabled" if enable else "staff.account_disabled"
            audit_staff(session, staff, action, details=_described(account))
    except NotFound:
        raise
    except HubError as exc:
        return _page(request, staff, error=exc.detail, status_code=exc.status)
    return _page(request, staff, message="accounts.enabled" if enable else "accounts.disabled")


@router.post("/accounts/{account_id}/password", response_class=HTMLResponse)
def set_password(
    request: Request,
    account_id: int,
    password: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN)),
) -> Response:
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            email = accounts.email_of(session, account_id)
            account = accounts.reset_password(session, email=email, password=password)
            audit_staff(session, staff, "staff.account_password_reset", details=_described(account))
    except NotFound:
        raise
    except HubError as exc:
        return _page(request, staff, error=exc.detail, status_code=exc.status)
    return _page(request, staff, message="accounts.password_set")


def _described(account: accounts.StaffAccount) -> dict[str, Any]:
    return {"email": account.email, "role": account.role, "purposes": list(account.purposes)}


def _page(
    request: Request,
    staff: Staff,
    *,
    values: dict[str, Any] | None = None,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(request.app.state.session_factory) as session:
        rows = [
            {
                "id": a.id,
                "email": a.email,
                "role": a.role,
                "purposes": list(a.purposes),
                "active": a.active,
                "local": a.password_hash is not None,
                "locked_until": a.locked_until,
                "last_login_at": a.last_login_at,
                "is_self": a.id == staff.id,
            }
            for a in accounts.list_staff(session)
        ]
    return render(
        request,
        "accounts.html",
        staff=staff,
        status_code=status_code,
        accounts=rows,
        roles=accounts.ROLES,
        purposes=accounts.PURPOSES,
        values=values or {"purposes": []},
        message=message,
        error=error,
    )
