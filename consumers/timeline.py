"""Timeline projection: one entry per referral, delivery or erasure event, per person."""

from __future__ import annotations

from consumers.runner import Context, Event
from hub.timeline.service import project
from schemas.cloudevents import EventType
from schemas.messages import (
    DeadlineDue,
    EventData,
    PersonErased,
    ReferralDelivered,
    ReferralDeliveryFailed,
    ReferralRequested,
    ReferralStatusChanged,
)

PROJECTED: dict[str, type[EventData]] = {
    EventType.REFERRAL_REQUESTED: ReferralRequested,
    EventType.REFERRAL_STATUS_CHANGED: ReferralStatusChanged,
    EventType.REFERRAL_DELIVERED: ReferralDelivered,
    EventType.REFERRAL_DELIVERY_FAILED: ReferralDeliveryFailed,
    EventType.PERSON_ERASED: PersonErased,
    EventType.REFERRAL_DEADLINE_DUE: DeadlineDue,
}


def handle(event: Event, ctx: Context) -> None:
    """Project the event if its type belongs on the timeline; ignore the others."""
    model = PROJECTED.get(event.attrs.type)
    if model is None:
        return
    data = model.model_validate(event.data)
    status = getattr(data, "status", None)
    project(
        ctx.session,
        attrs=event.attrs,
        data=data,
        referral_type=getattr(data, "referral_type", None),
        status="requested"
        if isinstance(data, ReferralRequested)
        else getattr(status, "value", None),
        business_status=getattr(data, "business_status", None),
    )
