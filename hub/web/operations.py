"""Staff pages for operations: deliveries and dead letters, partner administration, audit trail.

Each handler parses, calls the same services the CLI uses, audits what staff did, and renders.
Secrets appear once, on the page that created them, and never in the audit trail.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from connectors.egress import EgressPolicy
from hub.audit.models import AuditRecord
from hub.audit.verify import VerifyReport, verify
from hub.auth.scopes import SCOPES
from hub.db import unit_of_work
from hub.deadletters import service as deadletters
from hub.deadletters.service import DeadLetter
from hub.deliveries.models import DeliveryState
from hub.deliveries.service import consumer_name
from hub.errors import Conflict, HubError, InvalidInput, NotFound
from hub.events.models import ProcessedEvent
from hub.inbox.models import InboxMessage
from hub.kafka.client import probe
from hub.outbox.models import OutboxEvent
from hub.partners import service as partners
from hub.partners.models import OAuthClient, Partner
from hub.routing.models import RoutingHold
from hub.settings import Settings
from hub.web.accounts import Staff
from hub.web.i18n import add_words
from hub.web.pages import PREFIX, audit_staff, posting, render, require, viewing

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

DELIVERY_ROLES = ("team_lead", "admin")
ADMIN_ROLES = ("admin",)
AUDIT_ROLES = ("dpo", "admin")
#: Seconds to wait for a Kafka broker to answer before saying it is unreachable.
KAFKA_PROBE_SECONDS = 1.0
#: The newest dead letters shown; the topic keeps every letter ever written.
DEADLETTERS_SHOWN = 200
AUDIT_PAGE = 50
PROBLEMS_SHOWN = 100
#: Connector fields an admin may set in the UI (connectors.config.ConnectorConfig).
CONNECTOR_FIELDS = (
    "endpoint_url",
    "token_endpoint",
    "client_id",
    "credential_ref",
    "signing_secret_ref",
)
SECRET_REFS = ("credential_ref", "signing_secret_ref")
#: Confirmations a redirect may name; anything else in ``?message=`` is ignored.
MESSAGES = frozenset({"ops.replayed", "ops.revoked", "ops.mode_changed"})

add_words(
    {
        "ops.partner": ("Partner", "Partner"),
        "ops.mode": ("Zustellweg", "Delivery mode"),
        "ops.mode.push": ("Push (der Hub sendet)", "Push (the hub sends)"),
        "ops.mode.pull": ("Pull (der Partner ruft ab)", "Pull (the partner fetches)"),
        "ops.state": ("Zustand", "State"),
        "ops.healthy": ("in Ordnung", "healthy"),
        "ops.paused": (
            "pausiert seit {since}, {failures} Fehlversuche in Folge",
            "paused since {since}, {failures} failed attempts in a row",
        ),
        "ops.inactive": ("inaktiv", "inactive"),
        "ops.lag": ("Rückstand", "Lag"),
        "ops.lag.hint": (
            "Rückstand: an den Partner weitergeleitete Ereignisse, die noch nicht zugestellt"
            " (Push) oder noch nicht quittiert (Pull) sind, einschließlich unzustellbarer.",
            "Lag: events routed to the partner that are not yet delivered (push) or not yet"
            " acknowledged (pull), dead letters included.",
        ),
        "ops.delivered": ("zugestellt", "delivered"),
        "ops.dead_lettered": ("unzustellbar", "dead-lettered"),
        "ops.held": ("zurückgehalten", "held back"),
        "ops.last_success": ("Letzter Erfolg", "Last success"),
        "ops.last_error": ("Letzter Fehler", "Last error"),
        "ops.never": ("nie", "never"),
        "ops.deadletters": ("Unzustellbare Nachrichten", "Dead letters"),
        "ops.kafka_down": (
            "Kafka nicht erreichbar: Die unzustellbaren Nachrichten können gerade nicht"
            " gelesen werden. Bitte laden Sie die Seite später neu.",
            "Kafka unreachable: the dead letters cannot be read right now."
            " Please reload the page later.",
        ),
        "ops.dl.none": ("Keine unzustellbaren Nachrichten.", "No dead letters."),
        "ops.dl.shown": (
            "Die neuesten {shown} von {total} werden angezeigt.",
            "The newest {shown} of {total} are shown.",
        ),
        "ops.dl.hint": (
            "Erneut gesendet wird unter derselben Ereigniskennung: Was inzwischen zugestellt"
            " wurde, wird übersprungen, nichts kommt doppelt an.",
            "A replay keeps the event id: what was delivered meanwhile is skipped,"
            " nothing arrives twice.",
        ),
        "ops.dl.id": ("Kennung", "Id"),
        "ops.dl.recipient": ("Empfänger", "Recipient"),
        "ops.dl.event": ("Ereignis", "Event"),
        "ops.dl.reason": ("Grund", "Reason"),
        "ops.dl.consumer": ("Verarbeiter", "Consumer"),
        "ops.dl.status": ("Stand", "Status"),
        "ops.dl.open": ("offen", "open"),
        "ops.dl.replays": ("{n}-mal erneut gesendet", "replayed {n} times"),
        "ops.dl.applied": ("inzwischen verarbeitet", "processed since"),
        "ops.dpop": (
            "Nur DPoP-gebundene Tokens (RFC 9449) ausgeben",
            "Issue DPoP-bound tokens only (RFC 9449)",
        ),
        "ops.replay": ("Erneut senden", "Replay"),
        "ops.replayed": (
            "Die Nachricht wird erneut gesendet. Wurde sie inzwischen zugestellt, wird sie"
            " übersprungen.",
            "The message is being replayed. If it was delivered meanwhile, it is skipped.",
        ),
        "ops.id": ("Kennung", "Id"),
        "ops.id.hint": (
            "Kleinbuchstaben, Ziffern und „-“, beginnt mit einem Buchstaben",
            "lower-case letters, digits and '-', starting with a letter",
        ),
        "ops.name": ("Name", "Name"),
        "ops.kind": ("Art", "Kind"),
        "ops.created": ("angelegt", "created"),
        "ops.clients": ("Aktive Zugänge (OAuth-Clients)", "Active OAuth clients"),
        "ops.no_clients": ("Kein aktiver Zugang.", "No active client."),
        "ops.scopes": ("Berechtigungen", "Scopes"),
        "ops.auth": ("Anmeldeverfahren", "Authentication method"),
        "ops.jwks": (
            "Öffentliche Schlüssel des Partners (JWKS), nur für private_key_jwt",
            "The partner's public keys (JWKS), for private_key_jwt only",
        ),
        "ops.register": ("Partner registrieren", "Register partner"),
        "ops.registered": ("Partner registriert.", "Partner registered."),
        "ops.manage": ("Verwalten", "Manage"),
        "ops.rotate": ("Neuen Zugang ausstellen (Rotation)", "Issue new credentials (rotation)"),
        "ops.rotate.hint": (
            "Der neue Zugang erhält dieselben Berechtigungen. Der bisherige bleibt gültig,"
            " bis Sie ihn widerrufen.",
            "The new client gets the same scopes. The old one stays valid until you revoke it.",
        ),
        "ops.rotated": ("Neuer Zugang ausgestellt.", "New credentials issued."),
        "ops.revoke": ("Widerrufen", "Revoke"),
        "ops.revoked": (
            "Zugang widerrufen: Er erhält keine neuen Zugriffstoken mehr; bereits ausgestellte"
            " laufen nach ihrer Gültigkeitsdauer ab.",
            "Client revoked: it gets no new access tokens; tokens already issued expire"
            " after their lifetime.",
        ),
        "ops.mode.change": ("Zustellweg ändern", "Change delivery mode"),
        "ops.mode.hint": (
            "Push braucht die Webhook-Adresse des Partners. Leere Felder behalten ihren"
            " bisherigen Wert. Geheimnisse nur als Verweis (env:NAME oder file:/pfad).",
            "Push needs the partner's webhook URL. Empty fields keep their value."
            " Secrets only as a reference (env:NAME or file:/path).",
        ),
        "ops.mode_changed": (
            "Zustellweg geändert. Wirksam für die Push-Zustellung nach einem Neustart der"
            " Zustell-Consumer (hub up bzw. hub consume delivery).",
            "Delivery mode changed. Push delivery follows after a restart of the delivery"
            " consumers (hub up or hub consume delivery).",
        ),
        "ops.endpoint_url": ("Webhook-Adresse des Partners", "Partner's webhook URL"),
        "ops.token_endpoint": ("Token-Endpunkt des Partners", "Partner's token endpoint"),
        "ops.client_id.partner": (
            "Client-Kennung des Hubs beim Partner",
            "The hub's client id at the partner",
        ),
        "ops.credential_ref": ("Verweis auf das Client-Geheimnis", "Reference to the secret"),
        "ops.signing_secret_ref": (
            "Verweis auf das Signaturgeheimnis",
            "Reference to the signing secret",
        ),
        "ops.ref_hidden": ("gesetzt, Wert verborgen", "set, value hidden"),
        "ops.save": ("Speichern", "Save"),
        "ops.credentials": ("Neue Zugangsdaten", "New credentials"),
        "ops.secret_once": (
            "Das Client-Geheimnis wird nur jetzt angezeigt und ist nirgends gespeichert."
            " Übermitteln Sie es dem Partner auf sicherem Weg; nach Verlassen dieser Seite"
            " kann es niemand mehr anzeigen.",
            "The client secret is shown only now and is stored nowhere. Pass it to the"
            " partner securely; once you leave this page nobody can show it again.",
        ),
        "ops.client_id": ("Client-Kennung", "Client id"),
        "ops.client_secret": ("Client-Geheimnis", "Client secret"),
        "ops.audit.person": ("Person (Kennung)", "Person (id)"),
        "ops.audit.prefix": ("Aktion beginnt mit", "Action starts with"),
        "ops.audit.seq": ("Nr.", "No."),
        "ops.audit.at": ("Zeitpunkt", "Time"),
        "ops.audit.actor": ("Handelnd", "Actor"),
        "ops.audit.action": ("Aktion", "Action"),
        "ops.audit.details": ("Einzelheiten", "Details"),
        "ops.audit.older": ("Ältere Einträge", "Older records"),
        "ops.audit.newest": ("Zu den neuesten", "To the newest"),
        "ops.audit.recorded": (
            "Auch das Ansehen des Protokolls wird protokolliert.",
            "Viewing the audit trail is recorded too.",
        ),
        "ops.verify": ("Protokoll prüfen", "Verify the log"),
        "ops.verify.ok": (
            "Protokoll unverändert: {checked} Einträge gegen {checkpoints} signierte "
            "Prüfpunkte geprüft.",
            "Audit log intact: {checked} records checked against {checkpoints} signed checkpoints.",
        ),
        "ops.verify.bad": (
            "Protokoll NICHT unverändert: {problems} Probleme in {checked} Einträgen.",
            "Audit trail NOT intact: {problems} problems in {checked} records.",
        ),
    }
)


def _known(message: str) -> str | None:
    return message if message in MESSAGES else None


# ---------------------------------------------------------------------- deliveries


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries_page(
    request: Request, message: str = "", staff: Staff = Depends(require(*DELIVERY_ROLES))
) -> Response:
    return _deliveries(request, staff, _dead_letters(request), message=_known(message))


@router.post("/deadletters/{letter_id}/replay", response_class=HTMLResponse)
def replay_deadletter(
    request: Request, letter_id: str, staff: Staff = Depends(posting(*DELIVERY_ROLES))
) -> Response:
    letters = _dead_letters(request)
    if letters is None:
        return _deliveries(request, staff, None, status_code=503)
    letter = deadletters.find(letters, letter_id)
    try:
        with unit_of_work(request.app.state.session_factory) as session:
            row = deadletters.replay(session, letter=letter, catalogue=request.app.state.catalogue)
            audit_staff(
                session,
                staff,
                "staff.deadletter_replayed",
                details={
                    "letter_id": letter.id,
                    "event_id": row.event_id,
                    "topic": row.topic,
                    "recipient": letter.recipient,
                    "replay": row.replay,
                },
            )
    except HubError as exc:
        return _deliveries(request, staff, letters, error=exc.detail, status_code=exc.status)
    except IntegrityError:
        error = f"dead letter {letter.id} was replayed at the same moment; reload the page"
        return _deliveries(request, staff, letters, error=error, status_code=409)
    return RedirectResponse(f"{PREFIX}/deliveries?message=ops.replayed", status_code=303)


def _dead_letters(request: Request) -> list[DeadLetter] | None:
    """Every dead letter, or None when Kafka cannot be read (probed first: a client to a
    dead broker takes half a minute to give up)."""
    try:
        hub = request.app.state.hub
        bootstrap, security = hub.bootstrap_servers, hub.kafka_security
        if not probe(bootstrap, timeout=KAFKA_PROBE_SECONDS, security=security):
            return None
        return deadletters.read_all(bootstrap, request.app.state.settings, security=security)
    except Exception as exc:
        log.warning("deadletters.unreadable", extra={"error": repr(exc)})
        return None


def _deliveries(
    request: Request,
    staff: Staff,
    letters: list[DeadLetter] | None,
    *,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    settings = request.app.state.settings
    shown = list(reversed(letters[-DEADLETTERS_SHOWN:])) if letters else []
    with unit_of_work(request.app.state.session_factory) as session:
        rows = [
            _delivery_row(session, settings, partner)
            for partner in session.scalars(select(Partner).order_by(Partner.id))
        ]
        letter_rows = _letter_rows(session, shown)
    return render(
        request,
        "deliveries.html",
        staff=staff,
        status_code=status_code,
        partners=rows,
        kafka_down=letters is None,
        letters=letter_rows,
        total=len(letters or []),
        message=message,
        error=error,
    )


def _delivery_row(session: Session, settings: Settings, partner: Partner) -> dict[str, Any]:
    """What the delivery consumers recorded about one partner, and its lag."""
    state = session.get(DeliveryState, partner.id)
    last_ack = session.scalar(
        select(func.max(InboxMessage.acked_at)).where(InboxMessage.partner_id == partner.id)
    )
    successes = [at for at in (state.last_success_at if state else None, last_ack) if at]
    held = session.scalar(
        select(func.count(RoutingHold.id)).where(
            RoutingHold.recipient == partner.id, RoutingHold.released_at.is_(None)
        )
    )
    return {
        "id": partner.id,
        "name": partner.name,
        "mode": partner.delivery_mode,
        "active": partner.active,
        "paused": bool(state and state.paused),
        "paused_since": state.paused_since if state else None,
        "failures": state.consecutive_failures if state else 0,
        "last_success": max(successes) if successes else None,
        "last_error": state.last_error if state else None,
        "delivered": state.delivered if state else 0,
        "dead_lettered": state.dead_lettered if state else 0,
        "held": held or 0,
        "lag": _lag(session, settings, partner.id),
    }


def _lag(session: Session, settings: Settings, partner_id: str) -> int:
    """Events routed to the partner (its deliveries topic in the outbox) that were neither
    pushed to it nor acknowledged from its inbox."""
    pushed = select(ProcessedEvent.event_id).where(
        ProcessedEvent.consumer == consumer_name(partner_id)
    )
    acked = select(InboxMessage.event_id).where(
        InboxMessage.partner_id == partner_id, InboxMessage.acked_at.is_not(None)
    )
    waiting = select(func.count(distinct(OutboxEvent.event_id))).where(
        OutboxEvent.topic == settings.deliveries_topic(partner_id),
        OutboxEvent.event_id.not_in(pushed),
        OutboxEvent.event_id.not_in(acked),
    )
    return session.scalar(waiting) or 0


def _letter_rows(session: Session, letters: list[DeadLetter]) -> list[dict[str, Any]]:
    """Each letter's summary, how often it was replayed, and whether its consumer has
    applied the event since (then a replay would be skipped)."""
    ids = {_replayed_id(letter) for letter in letters}
    applied = {
        (consumer, event_id)
        for consumer, event_id in session.execute(
            select(ProcessedEvent.consumer, ProcessedEvent.event_id).where(
                ProcessedEvent.event_id.in_(ids)
            )
        )
    }
    replays = {
        (topic, event_id): most
        for topic, event_id, most in session.execute(
            select(OutboxEvent.topic, OutboxEvent.event_id, func.max(OutboxEvent.replay))
            .where(OutboxEvent.event_id.in_(ids))
            .group_by(OutboxEvent.topic, OutboxEvent.event_id)
        )
    }
    return [
        {
            **letter.summary(),
            "replays": replays.get((letter.original_topic, _replayed_id(letter)), 0),
            "applied": (letter.consumer, letter.event_id) in applied,
        }
        for letter in letters
    ]


def _replayed_id(letter: DeadLetter) -> str:
    # The event id hub.deadletters.service.replay publishes a letter under.
    return letter.event_id or f"dlq-{letter.id}"


# ---------------------------------------------------------------------- partners


@router.get("/partners", response_class=HTMLResponse)
def partners_page(
    request: Request, message: str = "", staff: Staff = Depends(require(*ADMIN_ROLES))
) -> Response:
    return _partners(request, staff, message=_known(message))


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


# ---------------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's query: one person, an action prefix, and the keyset position."""

    person: str = ""
    prefix: str = ""
    before: int | None = None

    def details(self) -> dict[str, Any]:
        return {"action_prefix": self.prefix or None, "before": self.before}

    def query(self, **extra: Any) -> str:
        pairs = {"person": self.person, "action": self.prefix, **extra}
        return urlencode({k: v for k, v in pairs.items() if v})


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    person: str = "",
    action: str = "",
    before: str = "",
    staff: Staff = Depends(require(*AUDIT_ROLES)),
) -> Response:
    query = AuditFilter(
        person=person.strip()[:70],
        prefix=action.strip()[:64],
        before=int(before) if before.isascii() and before.isdigit() else None,
    )
    return _audit_view(request, staff, query, report=None)


@router.post("/audit/verify", response_class=HTMLResponse)
def verify_chain(request: Request, staff: Staff = Depends(posting(*AUDIT_ROLES))) -> Response:
    with request.app.state.session_factory() as session:
        report = verify(session)
    return _audit_view(request, staff, AuditFilter(), report=report)


def _audit_view(
    request: Request, staff: Staff, query: AuditFilter, report: VerifyReport | None
) -> Response:
    with viewing(
        request,
        staff,
        action="staff.audit_viewed",
        person_id=query.person or None,
        details=query.details(),
    ) as session:
        if report is not None:
            audit_staff(
                session,
                staff,
                "staff.audit_verified",
                details={
                    "ok": report.ok,
                    "checked": report.checked,
                    "problems": len(report.problems),
                },
            )
        rows = _audit_records(session, query)
    older = query.query(before=rows[AUDIT_PAGE - 1]["seq"]) if len(rows) > AUDIT_PAGE else None
    return render(
        request,
        "audit.html",
        staff=staff,
        records=rows[:AUDIT_PAGE],
        query=query,
        older=older,
        newest=query.query() if query.before is not None else None,
        report=report,
        problems=report.problems[:PROBLEMS_SHOWN] if report else [],
    )


def _audit_records(session: Session, query: AuditFilter) -> list[dict[str, Any]]:
    """One page and one record more (to know whether an older page exists), newest first."""
    stmt = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(AUDIT_PAGE + 1)
    if query.person:
        stmt = stmt.where(AuditRecord.person_id == query.person)
    if query.prefix:
        stmt = stmt.where(AuditRecord.action.startswith(query.prefix, autoescape=True))
    if query.before is not None:
        stmt = stmt.where(AuditRecord.seq < query.before)
    return [_audit_row(entry) for entry in session.scalars(stmt)]


def _audit_row(entry: AuditRecord) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor_type": entry.actor_type,
        "actor": entry.actor,
        "action": entry.action,
        "person_id": entry.person_id,
        "purpose": entry.purpose,
        "details": json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
        if entry.details
        else "",
    }
