"""Registering partners and issuing their OAuth client credentials."""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.config import ConnectorConfig
from connectors.egress import EgressPolicy, EgressRefused, check_url, system_resolver
from hub.auth import cache as auth_cache
from hub.auth.scopes import SCOPES
from hub.auth.secrets import hash_secret, new_client_secret
from hub.db import utcnow
from hub.errors import Conflict, InvalidInput, NotFound
from hub.partners.models import OAuthClient, Partner

KINDS = ("authority", "university", "chamber", "jobcenter")
AUTH_METHODS = ("client_secret_basic", "private_key_jwt")

#: The partners of domain.md, registered on first start of the embedded default.
DEMO_PARTNERS: tuple[tuple[str, str, str], ...] = (
    ("amt", "Amt für Integration und Einwanderungsservice Duisburg", "authority"),
    ("ude", "Universität Duisburg-Essen, International Office", "university"),
    ("ihk-fosa", "IHK FOSA - Foreign Skills Approval", "chamber"),
    ("hwk", "Handwerkskammer Düsseldorf", "chamber"),
    ("jobcenter", "Jobcenter Duisburg", "jobcenter"),
)


def register_partner(
    session: Session,
    *,
    partner_id: str,
    name: str,
    kind: str,
    scopes: list[str],
    auth_method: str = "client_secret_basic",
    jwks: dict[str, Any] | None = None,
    dpop_required: bool = False,
) -> dict[str, Any]:
    """Register a partner with one OAuth client; return its credentials (secret shown once)."""
    _check(partner_id, kind, scopes, auth_method, jwks)
    if session.get(Partner, partner_id) is not None:
        raise Conflict(f"partner {partner_id!r} is already registered")
    session.add(Partner(id=partner_id, name=name, kind=kind, dpop_required=dpop_required))
    # A gateway may remember that this id was unknown (a token of an external issuer).
    auth_cache.drop_after_commit(session, partners=[partner_id])
    return add_client(
        session, partner_id=partner_id, scopes=scopes, auth_method=auth_method, jwks=jwks
    )


def require_dpop(session: Session, *, partner_id: str, required: bool) -> Partner:
    """Demand (or stop demanding) DPoP-bound tokens for every client of a partner."""
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise InvalidInput(f"no partner {partner_id!r}", field="id")
    partner.dpop_required = required
    auth_cache.drop_after_commit(session, partners=[partner_id])
    return partner


def deactivate_partner(session: Session, *, partner_id: str) -> Partner:
    """Stop a partner: its tokens are refused and it gets no new ones."""
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"no partner {partner_id}")
    partner.active = False
    auth_cache.drop_after_commit(session, partners=[partner_id])
    return partner


def revoke_client(session: Session, *, partner_id: str, client_id: str) -> OAuthClient:
    """Revoke one set of a partner's credentials; the tokens issued to it stop working."""
    client = session.get(OAuthClient, client_id)
    if client is None or client.partner_id != partner_id:
        raise NotFound(f"no client {client_id} of partner {partner_id}")
    if client.revoked_at is not None:
        raise Conflict(f"client {client_id} is already revoked")
    client.revoked_at = utcnow()
    auth_cache.drop_after_commit(session, clients=[client_id])
    return client


def active_partner_to_read(session: Session, partner_id: str) -> Partner | None:
    """Like :func:`active_partner`, for a caller that only reads the partner's columns.

    In the partner API the partner is then the gateway cache's own detached snapshot, shared
    by concurrent requests: never attach it to a session, change it or load its clients.
    Merging a copy into the session (:func:`active_partner`) costs more than the rest of the
    look-up, twice per referral (the caller and the performer).
    """
    cache = auth_cache.of(session)
    if cache is None:
        return active_partner(session, partner_id)
    partner = cache.partner(partner_id, session)
    return partner if partner is not None and partner.active else None


def active_partner(session: Session, partner_id: str) -> Partner | None:
    """The partner if it is registered and active, else None.

    In the partner API the session carries the gateway's cache: the partner then comes from
    memory (kept current by change notices) and is merged into the session without a query.
    """
    cache = auth_cache.of(session)
    if cache is None:
        partner = session.get(Partner, partner_id)
    else:
        snapshot = cache.partner(partner_id, session)
        partner = session.merge(snapshot, load=False) if snapshot is not None else None
    return partner if partner is not None and partner.active else None


def add_client(
    session: Session,
    *,
    partner_id: str,
    scopes: list[str],
    auth_method: str,
    jwks: dict[str, Any] | None,
) -> dict[str, Any]:
    """A new OAuth client for an existing partner."""
    client_id = f"{partner_id}-{secrets.token_hex(4)}"
    secret = new_client_secret() if auth_method == "client_secret_basic" else None
    session.add(
        OAuthClient(
            client_id=client_id,
            partner_id=partner_id,
            auth_method=auth_method,
            secret_hash=hash_secret(secret) if secret else None,
            jwks=jwks,
            scopes=" ".join(scopes),
        )
    )
    creds: dict[str, Any] = {
        "partner_id": partner_id,
        "client_id": client_id,
        "auth_method": auth_method,
        "scopes": " ".join(scopes),
    }
    if secret:
        creds["client_secret"] = secret
    return creds


def seed_demo_partners(session: Session) -> list[dict[str, Any]]:
    """Register the partners of the first catalogue, once; returns credentials of new ones."""
    if session.scalars(select(Partner.id).limit(1)).first() is not None:
        return []
    return [
        register_partner(session, partner_id=pid, name=name, kind=kind, scopes=list(SCOPES))
        for pid, name, kind in DEMO_PARTNERS
    ]


def partner_ids(session: Session, *, mode: str | None = None) -> list[str]:
    """Ids of the active partners, optionally only those in ``push`` or ``pull`` mode."""
    stmt = select(Partner.id).where(Partner.active)
    if mode:
        stmt = stmt.where(Partner.delivery_mode == mode)
    return list(session.scalars(stmt.order_by(Partner.id)))


def push_partners(session: Session) -> list[Partner]:
    """Active partners whose routed events the hub posts to their endpoint."""
    stmt = select(Partner).where(Partner.active, Partner.delivery_mode == "push")
    return list(session.scalars(stmt.order_by(Partner.id)))


def connect_partner(
    session: Session,
    *,
    partner_id: str,
    config: dict[str, Any],
    egress: EgressPolicy | None = None,
) -> Partner:
    """Store a partner's connector settings; ``mode`` switches it between push and pull.

    With ``egress`` (``EgressPolicy.for_profile(settings.profile)``) the URLs must also pass
    that profile's rules, resolved addresses included; without it, the checks every profile
    shares. Delivery checks again before every request either way.
    """
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise InvalidInput(f"no partner {partner_id!r}", field="id")
    try:
        checked = ConnectorConfig.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "push_incomplete":
            missing = first.get("ctx", {})["missing"].split(", ")
            raise InvalidInput(first["msg"], field="connector", missing=missing) from exc
        field = ".".join(str(p) for p in first["loc"]) or "connector"
        raise InvalidInput(f"{field}: {first['msg']}", field=field) from exc
    if egress is not None:
        _check_urls(checked, egress)
    partner.connector = checked.model_dump(mode="json")
    partner.delivery_mode = checked.mode
    auth_cache.drop_after_commit(session, partners=[partner_id])
    return partner


def _check_urls(config: ConnectorConfig, egress: EgressPolicy) -> None:
    for field in ("endpoint_url", "token_endpoint"):
        url = getattr(config, field)
        try:
            if url is not None:
                check_url(url, egress, system_resolver)
        except EgressRefused as exc:
            raise InvalidInput(f"{field}: {exc}", field=field) from exc


def _check(
    partner_id: str, kind: str, scopes: list[str], auth_method: str, jwks: dict[str, Any] | None
) -> None:
    if (
        not partner_id
        or not partner_id.replace("-", "").isalnum()
        or not partner_id[0].isalpha()
        or partner_id != partner_id.lower()
        or len(partner_id) > 63
    ):
        raise InvalidInput("partner id must be lower-case letters, digits and '-'", field="id")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            f"unknown or missing scopes {unknown}", field="scopes", allowed=list(SCOPES)
        )
    if auth_method not in AUTH_METHODS:
        raise InvalidInput(f"auth must be one of {', '.join(AUTH_METHODS)}", field="auth")
    if auth_method == "private_key_jwt" and not (jwks and jwks.get("keys")):
        raise InvalidInput(
            "private_key_jwt needs a JWKS with at least one public key", field="jwks"
        )
