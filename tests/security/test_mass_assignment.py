"""Mass assignment: request bodies accept only the fields they declare.

Generated from the OpenAPI document: every object in every request body must forbid
unknown properties (``additionalProperties: false``, pydantic ``extra="forbid"``), and for
every body the server-owned fields (those of the operation's answer, and the usual suspects
like ``requester``, ``version`` or ``set_by``) are sent at every level and must each give
422 naming the field, with nothing written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import date
from importlib import resources
from typing import Any

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.hubtest import Partners
from tests.security.support import (
    World,
    changes,
    problem_failure,
    seed_world,
    snapshot,
)

#: Fields a client must never set: the hub decides them (or they belong to someone else).
SERVER_OWNED = (
    "id",
    "status",
    "business_status",
    "requester",
    "requester_id",
    "performer_id",
    "person_id",
    "partner_id",
    "acting_partner",
    "set_by",
    "recorded_by",
    "recorded_at",
    "created_at",
    "updated_at",
    "version",
    "history",
    "withdrawn_at",
    "withdrawn_by",
    "active",
    "clocks",
    "role",
    "scope",
    "is_admin",
)

#: (method, path, location in the body) -> why that object may hold any property.
FREE_FORM = {
    ("post", "/v1/referrals", "payload"): "the referral type's own fields: free-form in the "
    "schema, checked field by field against the catalogue (refusal tested below)",
    ("post", "/v1/connectors/{kind}/messages", ""): "a partner's native message: each "
    "connector's strict models refuse unknown fields (tested below, per connector)",
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _objects(
    spec: dict[str, Any], schema: dict[str, Any], where: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object schema inside a body schema, with its location (``person``, ...)."""
    schema = _resolve(spec, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _objects(spec, option, where)
    if schema.get("type") == "array" and "items" in schema:
        yield from _objects(spec, schema["items"], where)
    if schema.get("type") == "object" or "properties" in schema:
        yield where, schema
        for name, sub in schema.get("properties", {}).items():
            yield from _objects(spec, sub, f"{where}.{name}".lstrip("."))


def body_operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, path) -> the JSON body schema, for every operation that takes a body."""
    found = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if (method, path) == ("post", "/oauth/token"):
                # RFC 6749 §3.2: a form whose unrecognised parameters the server must ignore.
                assert set(content) == {"application/x-www-form-urlencoded"}
                continue
            if content:
                assert set(content) == {"application/json"}, (method, path, set(content))
                found[(method, path)] = content["application/json"]["schema"]
    return found


def test_every_request_body_object_forbids_unknown_fields(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    open_objects = []
    for (method, path), schema in body_operations(spec).items():
        for where, obj in _objects(spec, schema):
            if obj.get("additionalProperties") is not False:
                open_objects.append((method, path, where))
    assert sorted(open_objects) == sorted(FREE_FORM), "declare extra='forbid' on the model"


# ---------------------------------------------------------------------- over HTTP


def _consent_base(world: World, example: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    person = world.referrals[0].person  # ude -> amt
    body = {**example, "person": {"id": person}, "granted_on": date.today().isoformat()}
    return "amt", "/v1/consents", body


def _status_base(world: World, example: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    ref = world.referrals[1]  # amt -> ihk-fosa, still requested
    return ref.performer, f"/v1/referrals/{ref.id}/status", example


#: (method, path) -> who sends the operation's schema example, where, adapted to the world.
BASES: dict[tuple[str, str], Callable[[World, dict[str, Any]], tuple[str, str, dict[str, Any]]]] = {
    ("post", "/v1/referrals"): lambda world, example: ("ude", "/v1/referrals", example),
    ("post", "/v1/referrals/{referral_id}/status"): _status_base,
    ("post", "/v1/consents"): _consent_base,
}


def _answer_fields(spec: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The properties of the operation's success answer: what the server owns."""
    fields: set[str] = set()
    for status, answer in operation.get("responses", {}).items():
        if status.startswith("2"):
            for content in answer.get("content", {}).values():
                fields |= set(_resolve(spec, content.get("schema", {})).get("properties", {}))
    return fields


def _attempts(
    spec: dict[str, Any], method: str, path: str, base: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(the dotted field, a body with that one unknown field added), at every level."""
    schema = body_operations(spec)[(method, path)]
    suspects = set(SERVER_OWNED) | _answer_fields(spec, spec["paths"][path][method])
    for where, obj in _objects(spec, schema):
        # the free-form payload is checked by the catalogue, so it is probed all the same
        for name in sorted(suspects - set(obj.get("properties", {}))):
            body = copy.deepcopy(base)
            target = body
            for part in [p for p in where.split(".") if p]:
                target = target.setdefault(part, {})
            target[name] = _value(name)
            yield f"{where}.{name}".lstrip("."), body


def _value(field: str) -> Any:
    """A plausible value for a server-owned field (what an attacker would want it to be)."""
    if field in ("requester", "requester_id", "performer_id", "partner_id", "acting_partner"):
        return "amt"
    if field.endswith("_by"):
        return "amt"
    return {
        "status": "completed",
        "version": 99,
        "active": True,
        "is_admin": True,
        "scope": "referrals:write",
        "role": "admin",
        "history": [],
        "clocks": [],
        "person_id": "p_Xk3v9QmT2bLr7WzA4nQe",
        "business_status": "PERMIT_GRANTED",
    }.get(field, "2027-01-01T00:00:00Z" if field.endswith("_at") else "x")


def _names(doc: dict[str, Any], field: str) -> bool:
    listed = {e.get("field") for e in doc.get("errors", []) if isinstance(e, dict)}
    return field in listed or doc.get("field") == field or field in doc.get("detail", "")


def test_server_owned_fields_are_refused_and_nothing_is_written(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    spec = client.get("/openapi.json").json()
    world = seed_world(client, partners, hub)
    operations = {k for k in body_operations(spec) if (*k, "") not in FREE_FORM}
    assert operations == set(BASES), "add a base body for the new operation"
    before = snapshot(hub)
    failures = []
    tried = 0
    bases = {}
    for (method, path), adapt in sorted(BASES.items()):
        schema = _resolve(spec, body_operations(spec)[(method, path)])
        partner, concrete, base = adapt(world, copy.deepcopy(schema["examples"][0]))
        bases[(method, path)] = (partner, concrete, base)
        for field, body in _attempts(spec, method, path, base):
            tried += 1
            r = client.request(method, concrete, json=body, headers=world.headers[partner])
            failure = problem_failure(r, 422)
            if failure:
                failures.append(f"{field}: {failure}")
            elif not _names(r.json(), field):
                failures.append(f"{method} {path} {field}: 422 does not name it: {r.text[:200]}")
    assert failures == []
    assert tried >= 60
    assert changes(before, snapshot(hub)) == {}, "a refused body wrote something"
    # The control: each base body, without the extra field, is accepted.
    for (method, _), (partner, concrete, base) in sorted(bases.items()):
        r = client.request(method, concrete, json=base, headers=world.headers[partner])
        assert r.status_code in (200, 201, 202), r.text


def _native_examples() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for kind in ("authority", "chamber", "jobcenter", "university"):
        folder = resources.files("connectors").joinpath(f"{kind}/examples")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.startswith("inbound-"):
                yield kind, entry.name, json.loads(entry.read_text("utf-8"))


def _native_objects(doc: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield where, doc
    for key, value in doc.items():
        if isinstance(value, dict):
            yield from _native_objects(value, f"{where}.{key}".lstrip("."))


def test_native_messages_refuse_server_owned_fields(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    world = seed_world(client, partners, hub)
    before = snapshot(hub)
    failures = []
    tried = 0
    for kind, name, example in _native_examples():
        sender = next(p for p in world.partners if world.kinds[p] == kind)
        for where, obj in _native_objects(example):
            for field in sorted(set(SERVER_OWNED) - set(obj)):
                message = copy.deepcopy(example)
                target = message
                for part in [p for p in where.split(".") if p]:
                    target = target[part]
                target[field] = _value(field)
                tried += 1
                r = client.post(
                    f"/v1/connectors/{kind}/messages", json=message, headers=world.headers[sender]
                )
                dotted = f"{where}.{field}".lstrip(".")
                failure = problem_failure(r, 422)
                if failure:
                    failures.append(f"{kind}/{name} {dotted}: {failure}")
                elif not _names(r.json(), dotted):
                    failures.append(f"{kind}/{name} {dotted}: not named: {r.text[:200]}")
    assert failures == []
    assert tried >= 150
    assert changes(before, snapshot(hub)) == {}
