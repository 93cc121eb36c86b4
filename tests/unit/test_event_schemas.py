"""Every event the hub emits names a JSON Schema that is committed (and served)."""

from __future__ import annotations

import ast
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.events.service import attributes_for
from schemas.cloudevents import EventType
from schemas.events import EVENT_DATA, UnpublishedEventType, schema_file
from schemas.export import MODELS, OUT_DIR, rendered
from schemas.messages import ReferralRequested

ROOT = Path(__file__).resolve().parents[2]
EMITTERS = {"attributes_for", "CloudEventAttributes"}


def _event_type(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "EventType":
        return str(getattr(EventType, node.attr))
    return None


def emitted_types() -> dict[str, list[str]]:
    """Event type -> where the source builds attributes for it (``attributes_for(EventType.X,
    …)`` or ``CloudEventAttributes(type=EventType.X, …)``)."""
    found: dict[str, list[str]] = {}
    for package in ("hub", "consumers"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name not in EMITTERS:
                    continue
                args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "type")]
                for event_type in filter(None, map(_event_type, args)):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(event_type, []).append(where)
    return found


def test_the_source_is_searched_where_events_are_made() -> None:
    found = emitted_types()
    assert EventType.REFERRAL_REQUESTED in found
    assert EventType.AUDIT_CHECKPOINT_SIGNED in found  # built without attributes_for


def test_every_emitted_type_has_a_committed_schema() -> None:
    committed = {p.name for p in OUT_DIR.glob("*.json")}
    missing = {
        event_type: where
        for event_type, where in emitted_types().items()
        if event_type not in EVENT_DATA or schema_file(event_type) not in committed
    }
    assert missing == {}, "register the type in schemas.events and run python -m schemas.export"


def test_attributes_built_by_hand_name_their_schema() -> None:
    offenders = []
    for path in (ROOT / "hub").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "CloudEventAttributes"
            ):
                keywords = {k.arg: k.value for k in node.keywords}
                if _event_type(keywords.get("type", ast.Constant(None))) and (
                    "dataschema" not in keywords
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_dataschema_url_ends_with_the_schema_file_of_its_model() -> None:
    now = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    data = ReferralRequested(
        event_id=uuid.uuid4(),
        person_id="p_Xk3v9QmT2bLr7WzA4nQe",
        acting_partner="ude",
        occurred_at=now,
        recorded_at=now,
        correlation_id=uuid.uuid4(),
        referral_type="residence.student",
        requester="ude",
        performer="amt",
    )
    attrs = attributes_for(EventType.REFERRAL_REQUESTED, data)
    assert attrs.dataschema == "https://talenthub.duisburg.de/schemas/referral.requested.v1.json"
    file = attrs.dataschema.rsplit("/", 1)[1]
    assert MODELS[file] is ReferralRequested
    assert (OUT_DIR / file).read_text(encoding="utf-8") == rendered()[file]


def test_a_type_without_a_schema_cannot_be_given_attributes() -> None:
    with pytest.raises(UnpublishedEventType):
        schema_file(EventType.CONSENT_GRANTED)
