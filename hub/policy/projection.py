"""Minimisation: what one recipient gets of an event is built from its route's policy.

Everything not named here or in the route is dropped, whatever the event carries, so a
field added to an event later never leaks to a partner by default. A status change carries
its lifecycle status to the other side; its business status code, outcome and note only as
far as the route's share for that recipient allows.
"""

from __future__ import annotations

from typing import Any

from hub.policy.model import Route, StatusShare
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
LIFECYCLE = ("from_status", "status", "reason")


def project(
    event_type: str, data: dict[str, Any], route: Route, *, recipient: str
) -> dict[str, Any]:
    """The copy of one event that ``recipient`` gets under ``route``."""
    out = {k: data[k] for k in IDENTIFYING if k in data}
    if event_type == EventType.REFERRAL_STATUS_CHANGED:
        out.update(shared_status(data, route.status_share(recipient)))
        return out
    for section in ("person", "payload"):
        given = data.get(section)
        allowed = [f.split(".", 1)[1] for f in route.fields if f.startswith(f"{section}.")]
        if isinstance(given, dict):
            out[section] = {k: given[k] for k in allowed if k in given}
    return out


def shared_status(change: dict[str, Any], share: StatusShare) -> dict[str, Any]:
    """The part of one status change the other side may see under ``share``."""
    out = {k: change[k] for k in LIFECYCLE if k in change}
    code = change.get("business_status")
    if code is not None and code in share.business_statuses:
        # An outcome ("refused", "no-equivalence") tells what the code would: they go together.
        out["business_status"] = code
        if "outcome" in change:
            out["outcome"] = change["outcome"]
    if share.notes and "note" in change:
        out["note"] = change["note"]
    return out
