"""Property: whatever an event carries, a recipient gets only what its route allows.

Every field outside the route's policy carries a sentinel value; the sentinel must appear
neither in the recipient's projection (what the delivery topic and the pull inbox carry)
nor in the native webhook body its connector builds from that projection.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.registry import connector_for
from hub.partners.service import DEMO_PARTNERS
from hub.policy.model import PERSON_FIELDS, Route, load_policy
from hub.policy.projection import project
from schemas.catalogue import load_catalogue
from schemas.cloudevents import EventType

CATALOGUE = load_catalogue()
POLICY = load_policy(CATALOGUE)
KIND = {pid: kind for pid, _, kind in DEMO_PARTNERS}
SENTINEL = "LEAK-"

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
extras = st.dictionaries(names, st.integers(0, 10**6).map(lambda i: f"{SENTINEL}{i}"), max_size=5)


def allowed_value(field_type: str) -> Any:
    return {
        "date": "2027-01-15",
        "boolean": True,
        "uuid": str(uuid.uuid4()),
        "semester": "2027S",
        "country": "IN",
        "language": "ar",
    }.get(field_type, "Wert")


def event_data(
    route: Route,
    person_extra: dict[str, str],
    payload_extra: dict[str, str],
    top_extra: dict[str, str],
) -> dict[str, Any]:
    rtype = CATALOGUE.types[route.type]
    allowed = set(route.fields)
    person = {
        f.split(".")[1]: ("1990-01-01" if f.endswith("birth_date") else "Name")
        if f in allowed
        else f"{SENTINEL}person"
        for f in PERSON_FIELDS
    }
    payload = {
        name: allowed_value(spec.type) if f"payload.{name}" in allowed else f"{SENTINEL}p"
        for name, spec in rtype.payload.items()
    }
    now = datetime.now(UTC).isoformat()
    data = {
        **top_extra,
        "event_id": str(uuid.uuid4()),
        "referral_id": str(uuid.uuid4()),
        "person_id": "p_" + "x" * 22,
        "acting_partner": route.requester,
        "occurred_at": now,
        "recorded_at": now,
        "purpose": route.purpose,
        "legal_basis": route.legal_basis,
        "schema_version": "1",
        "correlation_id": str(uuid.uuid4()),
        "causation_id": None,
        "referral_type": route.type,
        "requester": route.requester,
        "performer": route.performer,
        "person": {**person_extra, **person},
        "payload": {**payload_extra, **payload},
    }
    return data


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route=st.sampled_from(POLICY.for_partners(KIND)),
    person_extra=extras,
    payload_extra=extras,
    top_extra=extras,
)
def test_nothing_outside_the_policy_reaches_a_recipient(
    route: Route,
    person_extra: dict[str, str],
    payload_extra: dict[str, str],
    top_extra: dict[str, str],
) -> None:
    data = event_data(route, person_extra, payload_extra, top_extra)
    routed = project(EventType.REFERRAL_REQUESTED, data, route, recipient=route.performer)
    assert SENTINEL not in json.dumps(routed)
    native = connector_for(KIND[route.performer]).outbound.to_native(
        EventType.REFERRAL_REQUESTED, routed
    )
    assert SENTINEL not in json.dumps(native, ensure_ascii=False)
    for field in route.fields:  # minimisation must not starve the recipient either
        section, name = field.split(".")
        assert name in routed[section]
