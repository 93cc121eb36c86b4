"""Every event type the hub emits: the model of its data and the URL of its JSON Schema.

The hub takes an event's ``dataschema`` from here, and ``schemas.export`` writes one schema
file per entry, so no event can leave pointing at a schema that was never published.
"""

from __future__ import annotations

from pydantic import BaseModel

from schemas.cloudevents import TYPE_PREFIX, EventType
from schemas.messages import (
    AuditCheckpointSigned,
    DeadlineDue,
    PersonErased,
    ReferralDelivered,
    ReferralDeliveryFailed,
    ReferralRequested,
    ReferralStatusChanged,
)

#: Where the gateway serves the schema files (``GET /schemas/{file}``).
DATASCHEMA_BASE = "https://talenthub.duisburg.de/schemas/"

EVENT_DATA: dict[str, type[BaseModel]] = {
    EventType.REFERRAL_REQUESTED: ReferralRequested,
    EventType.REFERRAL_STATUS_CHANGED: ReferralStatusChanged,
    EventType.REFERRAL_DELIVERED: ReferralDelivered,
    EventType.REFERRAL_DELIVERY_FAILED: ReferralDeliveryFailed,
    EventType.REFERRAL_DEADLINE_DUE: DeadlineDue,
    EventType.PERSON_ERASED: PersonErased,
    EventType.AUDIT_CHECKPOINT_SIGNED: AuditCheckpointSigned,
}


class UnpublishedEventType(KeyError):
    """An event type with no published schema: the hub must not emit it."""


def schema_file(event_type: str) -> str:
    """The schema file of an event type, e.g. ``referral.requested.v1.json``."""
    if event_type not in EVENT_DATA:
        raise UnpublishedEventType(event_type)
    return event_type.removeprefix(TYPE_PREFIX) + ".json"


def dataschema(event_type: str) -> str:
    """The ``dataschema`` attribute of an event type's events."""
    return DATASCHEMA_BASE + schema_file(event_type)
