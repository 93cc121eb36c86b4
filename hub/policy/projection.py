"""Minimisation: what one recipient gets of an event is built from the route's allowed fields.

Everything not named here or in the route is dropped, whatever the event carries, so a
field added to an event later never leaks to a partner by default.
"""

from __future__ import annotations

from typing import Any

from hub.policy.model import Route
from schemas.cloudevents import EventType

IDENTIFYING = (
    "event_id",
    "referral_id",
    "person_id",
    "acting_partner",
    "occurred_at",
    "recorded_at",
    "purpose",
    "legal_basis",
    "schema_version",
    "correlation_id",
    "causation_id",
    "referral_type",
    "requester",
    "performer",
)
STATUS = ("from_status", "status", "business_status", "reason", "outcome", "note")


def project(event_type: str, data: dict[str, Any], route: Route) -> dict[str, Any]:
    """The recipient's copy of one event under ``route``."""
    out = {k: data[k] for k in IDENTIFYING if k in data}
    if event_type == EventType.REFERRAL_STATUS_CHANGED:
        out.update({k: data[k] for k in STATUS if k in data})
        return out
    for section in ("person", "payload"):
        given = data.get(section)
        allowed = [f.split(".", 1)[1] for f in route.fields if f.startswith(f"{section}.")]
        if isinstance(given, dict):
            out[section] = {k: given[k] for k in allowed if k in given}
    return out
