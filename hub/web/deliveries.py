"""Staff page of deliveries: each partner's delivery state and backlog, and its dead letters
with replay (the same replay as ``hub deadletters replay``, audited)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db import unit_of_work, utcnow
from hub.deadletters import service as deadletters
from hub.deadletters.service import DeadLetter
from hub.deliveries.health import assess
from hub.deliveries.models import DeliveryState
from hub.deliveries.service import consumer_name
from hub.errors import HubError
from hub.events.models import ProcessedEvent
from hub.inbox.models import InboxMessage
from hub.kafka.client import probe
from hub.outbox.models import OutboxEvent
from hub.partners.models import Partner
from hub.routing.models import RoutingHold
from hub.settings import Settings
from hub.web.accounts import Staff
from hub.web.operations import (
    DEADLETTERS_SHOWN,
    DELIVERY_ROLES,
    KAFKA_PROBE_SECONDS,
    known,
)
from hub.web.pages import PREFIX, audit_staff, posting, render, require

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------------- deliveries


@router.get("/deliveries", response_class=HTMLResponse)
def deliveries_page(
    request: Request, message: str = "", staff: Staff = Depends(require(*DELIVERY_ROLES))
) -> Response:
    return _deliveries(request, staff, _dead_letters(request), message=known(message))


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
    lag = _lag(session, settings, partner.id)
    paused = bool(state and state.paused)
    failures = state.consecutive_failures if state else 0
    last_success = max(successes) if successes else None
    health = assess(
        active=partner.active,
        paused=paused,
        failures=failures,
        lag=lag,
        last_success=last_success,
        now=utcnow(),
    )
    return {
        "id": partner.id,
        "name": partner.name,
        "health": health,
        "mode": partner.delivery_mode,
        "active": partner.active,
        "paused": paused,
        "paused_since": state.paused_since if state else None,
        "failures": failures,
        "last_success": last_success,
        "last_error": state.last_error if state else None,
        "delivered": state.delivered if state else 0,
        "dead_lettered": state.dead_lettered if state else 0,
        "held": held or 0,
        "lag": lag,
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
