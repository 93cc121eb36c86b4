"""Recording the outcome of push deliveries: delivered, rejected, or partner unavailable.

Event ids of the outcome events are derived from the delivered event (UUID v5), so that a
delivery consumer that is killed after recording but before committing its offset records
the same event again, which the outbox's unique key then refuses to store twice.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.orm import Session

from hub import staged
from hub.audit.service import record_at_commit
from hub.db import table_of, utcnow
from hub.deliveries.models import DeliveryState
from hub.events.service import already_processed, attributes_for, stage_processed
from hub.outbox.models import OutboxEvent
from hub.outbox.service import add_event, visible
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes, EventType
from schemas.messages import EventData, ReferralDelivered, ReferralDeliveryFailed

_NAMESPACE = uuid.UUID("6f1c2a4e-0d8b-4c53-9a55-1f3e2b7c9d10")


def outcome_event_id(what: str, *, partner_id: str, event_id: str, replay: str = "0") -> uuid.UUID:
    """The id of the ``delivered``/``failed`` outcome of delivering ``event_id`` to a partner."""
    return uuid.uuid5(_NAMESPACE, f"{what}:{partner_id}:{event_id}:{replay}")


def consumer_name(partner_id: str) -> str:
    """The dedup name of a partner's delivery consumer."""
    return f"delivery.{partner_id}"


def already_delivered(session: Session, *, partner_id: str, event_id: str) -> bool:
    """True when this event already reached the partner."""
    return already_processed(session, consumer=consumer_name(partner_id), event_id=event_id)


def record_delivered(
    session: Session,
    *,
    partner_id: str,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    settings: Settings,
) -> None:
    """Mark the event delivered and emit ``referral.delivered``; the partner's counts follow
    with :func:`count_delivered`, once for all the deliveries of a transaction."""
    # Staged, not ORM rows: the mark, the audit record and the outcome event go to the
    # database as one statement (hub.staged); the delivery consumer looks for its marks only
    # in the next poll's transaction.
    stage_processed(session, consumer=consumer_name(partner_id), event_id=attrs.id)
    audit_delivery(
        session, "delivery.delivered", partner_id, attrs.id, attrs.type, attrs.subject, data
    )
    outcome = ReferralDelivered(**_outcome_fields(attrs, data, partner_id, "delivered"))
    add_event(
        session,
        topic=settings.topic_events,
        attrs=attributes_for(EventType.REFERRAL_DELIVERED, outcome),
        data=outcome,
    )


def count_delivered(session: Session, *, partner_id: str, count: int) -> None:
    """``count`` more deliveries to the partner, which therefore answers: not paused.

    One statement, not a read of the state row and its update."""
    if count <= 0:
        return
    session.flush()  # a state row this transaction created through the ORM goes first
    session.execute(
        _counting(session.get_bind().dialect.name),
        {"partner_id": partner_id, "count": count, "now": utcnow()},
    )


@functools.cache
def _counting(dialect: str) -> Executable:
    """Built once per dialect: the values go in as parameters."""
    table = table_of(DeliveryState)
    healthy = {"paused": False, "paused_since": None, "consecutive_failures": 0}
    stmt = staged.insert_for(dialect)(table).values(
        partner_id=bindparam("partner_id", type_=table.c.partner_id.type),
        delivered=bindparam("count", type_=table.c.delivered.type),
        dead_lettered=0,
        last_success_at=bindparam("now", type_=table.c.last_success_at.type),
        **healthy,
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.partner_id],
        set_={
            **healthy,
            "last_success_at": stmt.excluded.last_success_at,
            "delivered": table.c.delivered + stmt.excluded.delivered,
        },
    )


def record_rejected(
    session: Session,
    *,
    partner_id: str,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    reason: str,
    status_code: int | None,
    settings: Settings,
) -> None:
    """Emit ``referral.delivery-failed`` once per dead letter (a replay may deliver later)."""
    fields = _outcome_fields(attrs, data, partner_id, "failed")
    visible(session)  # a failure of this poll staged before this one counts too
    if (
        session.scalars(
            select(OutboxEvent.id).where(OutboxEvent.event_id == str(fields["event_id"])).limit(1)
        ).first()
        is None
    ):
        outcome = ReferralDeliveryFailed(**fields, reason=reason[:500], status_code=status_code)
        add_event(
            session,
            topic=settings.topic_events,
            attrs=attributes_for(EventType.REFERRAL_DELIVERY_FAILED, outcome),
            data=outcome,
        )
    audit_delivery(
        session,
        "delivery.rejected",
        partner_id,
        attrs.id,
        attrs.type,
        attrs.subject,
        data,
        status_code=status_code,
    )
    state = _state(session, partner_id)
    state.dead_lettered += 1
    state.last_error = reason[:500]


def record_unavailable(session: Session, *, partner_id: str, reason: str) -> None:
    """The partner is down or overloaded: its deliveries are paused until it answers."""
    state = _state(session, partner_id)
    if not state.paused:
        state.paused, state.paused_since = True, utcnow()
    state.consecutive_failures += 1
    state.last_error = reason[:500]


def audit_delivery(
    session: Session,
    action: str,
    partner_id: str,
    event_id: str,
    event_type: str,
    referral_id: str | None,
    data: dict[str, Any],
    **extra: Any,
) -> None:
    """What went to whom, when, on which basis: the record the Art. 15 export reads."""
    record_at_commit(
        session,
        actor_type="system",
        actor="delivery",
        action=action,
        person_id=data.get("person_id"),
        purpose=data.get("purpose"),
        details={
            "recipient": partner_id,
            "event_id": event_id,
            "event_type": event_type,
            "referral_id": referral_id,
            "legal_basis": data.get("legal_basis"),
            "fields": sorted(_field_names(data)),
            **extra,
        },
    )


def _field_names(data: dict[str, Any]) -> set[str]:
    names = set()
    for section in ("person", "payload"):
        if isinstance(data.get(section), dict):
            names |= {f"{section}.{k}" for k in data[section]}
    return names


def _state(session: Session, partner_id: str) -> DeliveryState:
    state = session.get(DeliveryState, partner_id)
    if state is None:
        state = DeliveryState(
            partner_id=partner_id,
            paused=False,
            consecutive_failures=0,
            delivered=0,
            dead_lettered=0,
        )
        session.add(state)
    return state


def _outcome_fields(
    attrs: CloudEventAttributes, data: dict[str, Any], partner_id: str, what: str
) -> dict[str, Any]:
    routed = EventData.model_validate(data)
    replay = attrs.extensions.get("replay", "0")
    now = utcnow()
    return {
        "event_id": outcome_event_id(what, partner_id=partner_id, event_id=attrs.id, replay=replay),
        "referral_id": routed.referral_id,
        "person_id": routed.person_id,
        "acting_partner": partner_id,
        "occurred_at": now,
        "recorded_at": now,
        "purpose": routed.purpose,
        "legal_basis": routed.legal_basis,
        "correlation_id": routed.correlation_id,
        "causation_id": routed.event_id,
        "recipient": partner_id,
        "referral_type": data.get("referral_type"),
        "delivered_event_id": routed.event_id,
        "delivered_event_type": attrs.type,
    }
