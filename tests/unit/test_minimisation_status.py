"""Property: a recipient never gets a field, note or business status code its route withholds.

Events go through the router's handler (policy check, projection, outbox staging) as the
router consumer runs it; what the outbox would carry to each delivery topic, and the native
body each connector builds from it, is checked against the policy file read as plain YAML,
so a mistake in the policy model fails here as well. Every route gets at least 1,000
events: a sweep over every lifecycle status, every business status code of the catalogue and
both acting sides, then random ones with random notes, outcomes and extra fields.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import hub.staged
from connectors.registry import connector_for
from consumers import router
from consumers.runner import Context, Event
from hub.db import table_of
from hub.outbox.models import OutboxEvent
from hub.partners.models import Partner
from hub.partners.service import DEMO_PARTNERS
from hub.policy.model import Party, Route, load_policy
from hub.settings import Settings
from schemas.catalogue import load_catalogue
from schemas.cloudevents import CloudEventAttributes, EventType
from schemas.lifecycle import REASONS, Status

CATALOGUE = load_catalogue()
POLICY = load_policy(CATALOGUE)
RAW = yaml.safe_load(resources.files("hub.policy").joinpath("routes.v1.yaml").read_text("utf-8"))
KIND = {pid: kind for pid, _, kind in DEMO_PARTNERS}
CODES = sorted({c for t in CATALOGUE.types.values() for c in t.business_statuses})
REASON_CODES = sorted({r for rs in REASONS.values() for r in rs})
IDENTIFYING = {
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
}
LIFECYCLE = {"from_status", "status", "reason"}
SENTINEL = "LEAK-"
NOTE = "NOTE-"
EVENTS_PER_ROUTE = 1000
SEEN: Counter[str] = Counter()
CONNECTORS = {kind: connector_for(kind) for kind in set(KIND.values())}


def raw_rule(route: Route) -> dict[str, Any]:
    """The file's rule for this flow: one naming the partner beats one naming its kind."""

    def names(side: Any, partner: str) -> int:
        return 2 if side == partner else int(side == {"kind": KIND[partner]})

    ranked = [
        (names(r["requester"], route.requester) * names(r["performer"], route.performer), r)
        for r in RAW["routes"]
        if r["type"] == route.type
    ]
    best = max(rank for rank, _ in ranked)
    [raw] = [r for rank, r in ranked if rank == best and rank > 0]
    assert not raw.get("deny")
    return raw


def share_in_file(route: Route, recipient: str) -> tuple[bool, set[str]]:
    """(notes travel, codes that travel) to ``recipient``, read from the policy file itself."""
    raw = raw_rule(route)
    side = "status_to_requester" if recipient == route.requester else "status_to_performer"
    share = raw.get(side) or {}
    return bool(share.get("notes", False)), set(share.get("business_statuses", []))


def fields_in_file(route: Route) -> set[str]:
    return set(raw_rule(route)["fields"])


def base(route: Route, acting: str, extra: dict[str, str]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        **extra,
        "event_id": str(uuid.uuid4()),
        "referral_id": str(uuid.uuid4()),
        "person_id": "p_" + "x" * 22,
        "acting_partner": acting,
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
    }


def status_changed(
    route: Route,
    *,
    acting: str,
    from_status: Status,
    status: Status,
    code: str | None,
    reason: str | None,
    outcome: str | None,
    note: str | None,
    extra: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    data = base(route, acting, extra or {})
    data.update(
        from_status=from_status.value,
        status=status.value,
        business_status=code,
        reason=reason,
        outcome=outcome,
        note=note,
    )
    return EventType.REFERRAL_STATUS_CHANGED, data


def requested(
    route: Route, extra: dict[str, str], inner: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    allowed = fields_in_file(route)
    data = base(route, route.requester, extra)
    person = {"given_name": "Name", "family_name": "Name", "birth_date": "1990-01-01"}
    data["person"] = {
        **inner,
        **{k: v if f"person.{k}" in allowed else f"{SENTINEL}person" for k, v in person.items()},
    }
    data["payload"] = {
        **inner,
        **{
            name: value_of(spec.type) if f"payload.{name}" in allowed else f"{SENTINEL}payload"
            for name, spec in CATALOGUE.types[route.type].payload.items()
        },
    }
    return EventType.REFERRAL_REQUESTED, data


def value_of(field_type: str) -> Any:
    if field_type == "uuid":
        return str(uuid.uuid4())
    return {
        "date": "2027-01-15",
        "boolean": True,
        "semester": "2027S",
        "country": "IN",
        "language": "ar",
    }.get(field_type, "Wert")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    # Nothing is written: the staged outbox rows are read from the session and dropped.
    engine = create_engine("sqlite://")
    data_dir = Path(tmp_path_factory.mktemp("hub"))
    # The router resolves routes by partner kind: the demo partners are registered.
    Partner.__table__.create(engine)
    with Session(engine) as setup, setup.begin():
        setup.add_all(Partner(id=pid, name=name, kind=kind) for pid, name, kind in DEMO_PARTNERS)
    # Consent is another check (tests/integration/test_consent_routing.py): here it is given.
    with (
        Session(engine, autoflush=False) as session,
        mock.patch("hub.routing.service.covering", return_value=object()),
    ):
        yield Context(
            session=session,
            settings=Settings(data_dir=data_dir),
            catalogue=CATALOGUE,
            policy=POLICY,
        )
    engine.dispose()


def route_through(ctx: Context, route: Route, event_type: str, data: dict[str, Any]) -> None:
    """Run the router on one event and check every copy it stages."""
    SEEN[route.name] += 1
    attrs = CloudEventAttributes(
        id=data["event_id"],
        source=f"/partners/{data['acting_partner']}",
        type=event_type,
        time=datetime.now(UTC),
        subject=data["referral_id"],
        partitionkey=data["person_id"],
    )
    # As if the transaction had written outbox rows already: the router's are then only
    # staged, where they are read here, instead of inserted at once.
    ctx.session.info["outbox_written"] = True
    router.handle(Event(attrs, json.loads(json.dumps(data)), "hub.events.v1", 0, 0), ctx)
    staged = hub.staged.pending(ctx.session, table_of(OutboxEvent))
    hub.staged.discard(ctx.session)
    ctx.session.expunge_all()
    expected = (
        [route.performer]
        if event_type == EventType.REFERRAL_REQUESTED
        else sorted({route.requester, route.performer} - {data["acting_partner"]})
    )
    assert sorted(r["topic"] for r in staged) == [
        ctx.settings.deliveries_topic(p) for p in expected
    ]
    for row, recipient in zip(sorted(staged, key=lambda r: r["topic"]), expected, strict=True):
        copy = json.loads(row["value"])
        check_copy(route, recipient, event_type, data, copy)
        native = CONNECTORS[KIND[recipient]].outbound.to_native(event_type, copy)
        body = json.dumps(native, ensure_ascii=False)
        assert SENTINEL not in body
        if NOTE in body:
            assert share_in_file(route, recipient)[0], f"{route.name}: note in {recipient}'s body"


def check_copy(
    route: Route, recipient: str, event_type: str, data: dict[str, Any], copy: dict[str, Any]
) -> None:
    assert SENTINEL not in json.dumps(copy), (route.name, recipient, copy)
    if event_type == EventType.REFERRAL_REQUESTED:
        assert set(copy) <= IDENTIFYING | {"person", "payload"}
        sent = {f"{s}.{k}" for s in ("person", "payload") for k in copy.get(s, {})}
        assert sent == fields_in_file(route), "exactly the route's fields, no more, no fewer"
        return
    notes, codes = share_in_file(route, recipient)
    assert set(copy) <= IDENTIFYING | LIFECYCLE | {"business_status", "outcome", "note"}
    for key in ("status", "from_status", "reason"):  # the lifecycle always travels
        assert copy.get(key) == data[key], key
    code = data["business_status"]
    if code in codes:
        assert copy.get("business_status") == code
        assert copy.get("outcome") == data["outcome"]
    else:
        assert copy.get("business_status") is None, f"{route.name}: {code} reached {recipient}"
        assert copy.get("outcome") is None, f"{route.name}: outcome with {code} at {recipient}"
    if notes and data["note"] is not None:
        assert copy.get("note") == data["note"]
    else:
        assert copy.get("note") is None, f"{route.name}: a note reached {recipient}"


def sweep(route: Route) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every status, every catalogue code (and none), from either side, with note and outcome."""
    for acting in (route.requester, route.performer):
        for status in Status:
            for code in [None, *CODES]:
                yield status_changed(
                    route,
                    acting=acting,
                    from_status=Status.IN_PROGRESS,
                    status=status,
                    code=code,
                    reason=None,
                    outcome="decided" if status == Status.COMPLETED else None,
                    note=f"{NOTE}{acting}-{status.value}",
                )


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
extras = st.dictionaries(names, st.integers(0, 10**6).map(lambda i: f"{SENTINEL}{i}"), max_size=4)
statuses = st.sampled_from(list(Status))
# Up to the API's 2,000 characters; repeating a short random text keeps generation fast.
notes = st.builds(
    lambda text, times: f"{NOTE}{text * times}"[:2000], st.text(max_size=40), st.integers(1, 80)
)


@st.composite
def random_event(draw: st.DrawFn, route: Route) -> tuple[str, dict[str, Any]]:
    if draw(st.integers(0, 5)) == 0:
        return requested(route, draw(extras), draw(extras))
    return status_changed(
        route,
        acting=draw(st.sampled_from([route.requester, route.performer])),
        from_status=draw(statuses),
        status=draw(statuses),
        code=draw(st.none() | st.sampled_from(CODES)),
        reason=draw(st.none() | st.sampled_from(REASON_CODES)),
        outcome=draw(st.none() | st.integers(0, 999).map(lambda i: f"outcome-{i}")),
        note=draw(st.none() | notes),
        extra=draw(extras),
    )


@pytest.mark.parametrize("route", POLICY.for_partners(KIND), ids=lambda r: r.name)
def test_no_recipient_gets_what_its_route_withholds(route: Route, ctx: Context) -> None:
    SEEN[route.name] = 0
    for event_type, data in sweep(route):
        route_through(ctx, route, event_type, data)

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(events=st.lists(random_event(route), min_size=5, max_size=8))
    def random_ones(events: list[tuple[str, dict[str, Any]]]) -> None:
        for event in events:
            route_through(ctx, route, *event)

    random_ones()
    assert SEEN[route.name] >= EVENTS_PER_ROUTE


def test_the_shipped_policy_keeps_the_concrete_flows_closed() -> None:
    """The cases the data protection rules name, against the loaded policy."""
    amt, jobcenter = Party("amt", "authority"), Party("jobcenter", "jobcenter")
    integration = POLICY.route(amt, jobcenter, "jobcenter.integration")
    skilled = POLICY.route(jobcenter, amt, "residence.skilled-worker")
    assert integration is not None and skilled is not None
    to_amt = integration.status_share("amt")
    assert not to_amt.notes
    assert {"FIRST_APPOINTMENT_HELD", "RECOGNITION_FUNDING_APPROVED"}.isdisjoint(
        to_amt.business_statuses
    )
    to_jobcenter = skilled.status_share("jobcenter")
    assert not to_jobcenter.notes
    assert {
        "PERMIT_GRANTED",
        "PERMIT_REFUSED",
        "BA_CONSENT_REFUSED",
        "FIKTIONSBESCHEINIGUNG_ISSUED",
    }.isdisjoint(to_jobcenter.business_statuses)
