"""Staff page of partner administration: register, rotate and revoke OAuth clients, switch
between push and pull. Secrets appear once, on the page that created them, and never in the
audit trail."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from connectors.egress import EgressPolicy
from hub.auth.scopes import SCOPES
from hub.db import unit_of_work
from hub.errors import Conflict, HubError, InvalidInput, NotFound
from hub.partners import service as partners
from hub.partners.models import OAuthClient, Partner
from hub.settings import Settings
from hub.web.accounts import Staff
from hub.web.operations import (
    ADMIN_ROLES,
    CONNECTOR_FIELDS,
    SECRET_REFS,
    known,
)
from hub.web.pages import PREFIX, audit_staff, posting, render, require

router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------------- partners


@router.get("/partners", response_class=HTMLResponse)
def partners_page(
    request: Request, message: str = "", staff: Staff = Depends(require(*ADMIN_ROLES))
) -> Response:
    return _partners(request, staff, message=known(message))


@router.post("/partners", response_class=HTMLResponse)
def register(
    request: Request,
    partner_id: str = Form("", alias="id"),
    name: str = Form(""),
    kind: str = Form(""),
    scopes: list[str] = Form([]),
    auth_method: str = Form("client_secret_basic"),
    jwks: str = Form(""),
    dpop: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN_ROLES)),
) -> Response:
    values: dict[str, Any] = {
        "id": partner_id,
        "name": name,
        "kind": kind,
        "scopes": scopes,
        "auth_method": auth_method,
        "jwks": jwks,
        "dpop": dpop == "on",
    }
    try:
        created = _register(
            request,
            staff,
            partner_id=partner_id.strip(),
            name=name.strip(),
            kind=kind,
            scopes=scopes,
            auth_method=auth_method,
            jwks=_jwks(jwks) if auth_method == "private_key_jwt" else None,
            dpop_required=dpop == "on",
        )
    except HubError as exc:
        return _partners(request, staff, values=values, error=exc.detail, status_code=exc.status)
    return _partners(request, staff, created=created, message="ops.registered")


def _register(
    request: Request,
    staff: Staff,
    *,
    partner_id: str,
    name: str,
    kind: str,
    scopes: list[str],
    auth_method: str,
    jwks: dict[str, Any] | None,
    dpop_required: bool,
) -> dict[str, Any]:
    if not partner_id.isascii():
        # Topic names and URLs carry the id: letters beyond ASCII would pass isalnum().
        raise InvalidInput("partner id must be lower-case letters, digits and '-'", field="id")
    if not 1 <= len(name) <= 200:
        raise InvalidInput("name: 1 to 200 characters", field="name")
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            created = partners.register_partner(
                session,
                partner_id=partner_id,
                name=name,
                kind=kind,
                scopes=scopes,
                auth_method=auth_method,
                jwks=jwks,
                dpop_required=dpop_required,
            )
            audit_staff(
                session,
                staff,
                "staff.partner_registered",
                details={
                    "partner_id": partner_id,
                    "kind": kind,
                    "scopes": sorted(scopes),
                    "auth_method": auth_method,
                    "client_id": created["client_id"],
                },
            )
    except IntegrityError as exc:  # registered concurrently, between check and commit
        raise Conflict(f"partner {partner_id!r} is already registered") from exc
    return created


@router.post("/partners/{partner_id}/rotate", response_class=HTMLResponse)
def rotate(
    request: Request,
    partner_id: str,
    jwks: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN_ROLES)),
) -> Response:
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            model = _newest_client(session, partner_id)
            keys = _jwks(jwks) if model.auth_method == "private_key_jwt" else None
            if model.auth_method == "private_key_jwt" and not (keys and keys.get("keys")):
                raise InvalidInput("private_key_jwt needs the partner's new JWKS", field="jwks")
            created = partners.add_client(
                session,
                partner_id=partner_id,
                scopes=sorted(model.scope_set),
                auth_method=model.auth_method,
                jwks=keys,
            )
            audit_staff(
                session,
                staff,
                "staff.partner_credentials_rotated",
                details={
                    "partner_id": partner_id,
                    "client_id": created["client_id"],
                    "auth_method": model.auth_method,
                },
            )
    except NotFound:
        raise
    except HubError as exc:
        return _partners(request, staff, error=exc.detail, status_code=exc.status)
    return _partners(request, staff, created=created, message="ops.rotated")


def _newest_client(session: Session, partner_id: str) -> OAuthClient:
    """The client whose scopes and method a rotation copies: the newest active one, else
    the newest at all."""
    if session.get(Partner, partner_id) is None:
        raise NotFound(f"no partner {partner_id}")
    newest = session.scalars(
        select(OAuthClient)
        .where(OAuthClient.partner_id == partner_id)
        .order_by(OAuthClient.revoked_at.is_not(None), OAuthClient.created_at.desc())
        .limit(1)
    ).first()
    if newest is None:
        raise Conflict(f"partner {partner_id!r} has no client to copy scopes from")
    return newest


@router.post("/partners/{partner_id}/clients/{client_id}/revoke", response_class=HTMLResponse)
def revoke(
    request: Request,
    partner_id: str,
    client_id: str,
    staff: Staff = Depends(posting(*ADMIN_ROLES)),
) -> Response:
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            partners.revoke_client(session, partner_id=partner_id, client_id=client_id)
            audit_staff(
                session,
                staff,
                "staff.partner_client_revoked",
                details={"partner_id": partner_id, "client_id": client_id},
            )
    except NotFound:
        raise
    except HubError as exc:
        return _partners(request, staff, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"{PREFIX}/partners?message=ops.revoked", status_code=303)


@router.post("/partners/{partner_id}/mode", response_class=HTMLResponse)
def switch_mode(
    request: Request,
    partner_id: str,
    mode: str = Form(""),
    endpoint_url: str = Form(""),
    token_endpoint: str = Form(""),
    client_id: str = Form(""),
    credential_ref: str = Form(""),
    signing_secret_ref: str = Form(""),
    staff: Staff = Depends(posting(*ADMIN_ROLES)),
) -> Response:
    given = {
        "endpoint_url": endpoint_url,
        "token_endpoint": token_endpoint,
        "client_id": client_id,
        "credential_ref": credential_ref,
        "signing_secret_ref": signing_secret_ref,
    }
    changed = {name: value.strip() for name, value in given.items() if value.strip()}
    try:
        _check_mode(request.app.state.settings, mode, changed)
        with unit_of_work(request.app.state.session_factory) as session:
            partner = session.get(Partner, partner_id)
            if partner is None:
                raise NotFound(f"no partner {partner_id}")
            config = {**(partner.connector or {}), **changed, "mode": mode}
            partners.connect_partner(
                session,
                partner_id=partner_id,
                config=config,
                egress=EgressPolicy.for_profile(request.app.state.settings.profile),
            )
            audit_staff(
                session,
                staff,
                "staff.partner_mode_changed",
                details={"partner_id": partner_id, "mode": mode, "fields": sorted(changed)},
            )
    except NotFound:
        raise
    except HubError as exc:
        return _partners(request, staff, error=exc.detail, status_code=exc.status)
    return RedirectResponse(f"{PREFIX}/partners?message=ops.mode_changed", status_code=303)


def _check_mode(settings: Settings, mode: str, changed: dict[str, str]) -> None:
    if mode not in ("push", "pull"):
        raise InvalidInput("mode must be push or pull", field="mode")
    if settings.profile == "development":
        return
    for name in SECRET_REFS:
        # The delivery consumers refuse inline values outside development (registry).
        if changed.get(name, "").startswith("value:"):
            raise InvalidInput(f"{name}: use env: or file:, not value:", field=name)


def _jwks(text: str) -> dict[str, Any] | None:
    """The JWKS pasted into a form, or None when empty."""
    if not text.strip():
        return None
    try:
        keys = json.loads(text)
    except ValueError as exc:
        raise InvalidInput("jwks: not valid JSON", field="jwks") from exc
    if not isinstance(keys, dict):
        raise InvalidInput("jwks: must be a JSON object with keys", field="jwks")
    return keys


def _partners(
    request: Request,
    staff: Staff,
    *,
    values: dict[str, Any] | None = None,
    created: dict[str, Any] | None = None,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with unit_of_work(request.app.state.session_factory) as session:
        rows = [
            _partner_row(partner)
            for partner in session.scalars(
                select(Partner).options(selectinload(Partner.clients)).order_by(Partner.id)
            )
        ]
    return render(
        request,
        "partners.html",
        staff=staff,
        status_code=status_code,
        partners=rows,
        kinds=partners.KINDS,
        scopes=SCOPES,
        auth_methods=partners.AUTH_METHODS,
        values=values or {"scopes": [], "auth_method": "client_secret_basic"},
        created=created,
        message=message,
        error=error,
    )


def _partner_row(partner: Partner) -> dict[str, Any]:
    """A partner as the admin sees it: never a secret or a secret's hash."""
    connector = partner.connector or {}
    active = sorted(
        (c for c in partner.clients if c.revoked_at is None), key=lambda c: c.created_at
    )
    newest = max(partner.clients, key=lambda c: c.created_at, default=None)
    return {
        "id": partner.id,
        "name": partner.name,
        "kind": partner.kind,
        "mode": partner.delivery_mode,
        "active": partner.active,
        "created_at": partner.created_at,
        "clients": [
            {
                "client_id": c.client_id,
                "auth_method": c.auth_method,
                "scopes": c.scopes,
                "created_at": c.created_at,
            }
            for c in active
        ],
        "needs_jwks": newest is not None and newest.auth_method == "private_key_jwt",
        "connector": {name: _shown(name, connector.get(name)) for name in CONNECTOR_FIELDS},
    }


def _shown(name: str, value: object) -> str | None:
    """A connector value for the form; an inline secret (``value:``) is never echoed."""
    if not isinstance(value, str) or not value:
        return None
    if name in SECRET_REFS and value.startswith("value:"):
        return ""
    return value
