"""Broken object-level authorization: a partner that does not take part in an object gets
404 for it on every route that takes its id, exactly as for an id that does not exist, and
nothing changes.

The matrix is generated from the app's routes: every partner route with an id in its path
must have a probe below, so a new id-taking route fails here until it is added.
"""

from __future__ import annotations

import copy
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.hubtest import Partners
from tests.security.support import (
    World,
    app_routes,
    changes,
    path_params,
    problem_failure,
    seed_world,
    snapshot,
)

#: Path parameter -> the kind of object it names.
ID_PARAMS = {
    "referral_id": "referral",
    "person_id": "person",
    "consent_id": "consent",
    "event_id": "inbox message",
}
#: Path parameters that name no object a partner could own, with the reason.
NOT_OBJECTS = {
    "kind": "a connector kind (university, chamber, ...); the route refuses any but the "
    "caller's own kind, and referral ids inside native bodies are probed below",
}


def _objects(world: World, kind: str) -> dict[str, frozenset[str]]:
    """Object id -> the partners that take part in it, for each kind of object."""
    if kind == "referral":
        return {r.id: frozenset({r.requester, r.performer}) for r in world.referrals}
    if kind == "person":
        return world.people
    if kind == "consent":
        return {c: viewers for c, (_, viewers) in world.consents.items()}
    return {e: frozenset({owner}) for e, owner in world.inbox.items()}


def _unknown_id(kind: str) -> str:
    return "p_" + secrets.token_urlsafe(16) if kind == "person" else str(uuid.uuid4())


@dataclass(frozen=True)
class Probe:
    """How to call one id-taking route, and who may see the object through it."""

    kind: str
    #: bodies a stranger tries (None: no body)
    bodies: tuple[dict[str, Any] | None, ...] = (None,)
    #: the partners that see the object through this route (default: its participants)
    viewers: Callable[[World, str], frozenset[str]] | None = None
    #: set for routes that list what the caller may see: a stranger gets the same empty
    #: answer as for an unknown id instead of a 404 (the reason is the contract)
    filtered: str | None = None


STATUS_MOVES: tuple[dict[str, Any], ...] = (
    {"status": "accepted"},  # a performer's move
    {"status": "cancelled", "reason": "withdrawn-by-client"},  # a requester's move
    {"status": "entered-in-error"},
)

PROBES: dict[tuple[str, str], Probe] = {
    ("GET", "/v1/referrals/{referral_id}"): Probe("referral"),
    ("POST", "/v1/referrals/{referral_id}/status"): Probe("referral", STATUS_MOVES),
    ("GET", "/v1/people/{person_id}/timeline"): Probe("person"),
    # Consents you recorded or that cover you; a referral party sees the (maybe empty) list,
    # anyone else the 404 of an unknown person.
    ("GET", "/v1/people/{person_id}/consents"): Probe(
        "person",
        viewers=lambda world, person: (
            world.consent_viewers(person) | world.people.get(person, frozenset())
        ),
    ),
    ("POST", "/v1/consents/{consent_id}/withdraw"): Probe("consent"),
    ("POST", "/v1/inbox/{event_id}/ack"): Probe("inbox message"),
}


def id_taking_routes(app: Any) -> dict[tuple[str, str], list[str]]:
    """(method, path) -> object parameters, for every partner route with one in its path."""
    found = {}
    for route in app_routes(app):
        params = path_params(route.path)
        if not route.path.startswith("/v1/") or not params:
            continue
        unknown = [p for p in params if p not in ID_PARAMS and p not in NOT_OBJECTS]
        assert not unknown, f"{route.path}: say what {unknown} names (ID_PARAMS or NOT_OBJECTS)"
        objects = [p for p in params if p in ID_PARAMS]
        for verb in route.methods - {"HEAD"}:
            if objects:
                found[(verb, route.path)] = objects
    return found


def test_every_id_taking_route_is_in_the_matrix(app: Any) -> None:
    routes = id_taking_routes(app)
    assert set(routes) == set(PROBES), "add a Probe for each new id-taking partner route"
    for key, params in routes.items():
        assert [ID_PARAMS[p] for p in params] == [PROBES[key].kind], key


def _normal(doc: dict[str, Any], object_id: str) -> dict[str, Any]:
    """A problem document with the requested id masked and the instance path dropped."""
    return {k: str(v).replace(object_id, "<id>") for k, v in doc.items() if k not in ("instance",)}


def test_strangers_get_404_on_every_route_and_change_nothing(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    world = seed_world(client, partners, hub)
    routes = id_taking_routes(client.app)
    before = snapshot(hub)
    failures: list[str] = []
    attempts = 0
    for (verb, template), probe in sorted(PROBES.items()):
        (param,) = routes[(verb, template)]
        objects = _objects(world, probe.kind)
        for object_id, parties in objects.items():
            viewers = probe.viewers(world, object_id) if probe.viewers else parties
            for partner in world.partners:
                if partner in viewers:
                    continue
                unknown_id = _unknown_id(probe.kind)
                for body in probe.bodies:
                    attempts += 1
                    answers = []
                    for target in (object_id, unknown_id):
                        path = template.replace("{" + param + "}", target)
                        answers.append(
                            client.request(
                                verb,
                                path,
                                json=body,
                                headers={
                                    **world.headers[partner],
                                    "Idempotency-Key": str(uuid.uuid4()),
                                },
                            )
                        )
                    foreign, unknown = answers
                    label = f"{partner} {verb} {template} ({probe.kind} of {sorted(parties)})"
                    if probe.filtered:
                        if {(a.status_code, a.text) for a in answers} != {(200, "[]")}:
                            failures.append(f"{label}: {foreign.status_code} {foreign.text[:200]}")
                        continue
                    failure = problem_failure(foreign, 404) or problem_failure(unknown, 404)
                    if failure:
                        failures.append(f"{label}: {failure}")
                    elif _normal(foreign.json(), object_id) != _normal(unknown.json(), unknown_id):
                        failures.append(f"{label}: 404 differs from an unknown id's")
    assert failures == []
    assert attempts >= 60
    assert changes(before, snapshot(hub)) == {}, "a refused request changed something"

    # The control (after the comparison: it changes state): the same routes and objects
    # answer those who take part.
    for (verb, template), probe in sorted(PROBES.items()):
        (param,) = routes[(verb, template)]
        for object_id, parties in _objects(world, probe.kind).items():
            viewers = probe.viewers(world, object_id) if probe.viewers else parties
            for partner in sorted(viewers):
                path = template.replace("{" + param + "}", object_id)
                r = client.request(verb, path, json=probe.bodies[0], headers=world.headers[partner])
                assert r.status_code != 404 and r.status_code < 500, (partner, path, r.text)
                if probe.filtered:
                    assert r.json() != [], (partner, path)


def test_lists_show_only_the_callers_own_objects(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    world = seed_world(client, partners, hub)
    for partner in world.partners:
        headers = world.headers[partner]
        mine = {r.id for r in world.referrals if partner in (r.requester, r.performer)}
        listed = client.get("/v1/referrals", params={"limit": 200}, headers=headers).json()
        assert {i["id"] for i in listed["items"]} == mine, partner
        for role in ("requester", "performer"):
            page = client.get("/v1/referrals", params={"role": role}, headers=headers).json()
            assert {i["id"] for i in page["items"]} == {
                r.id for r in world.referrals if getattr(r, role) == partner
            }, (partner, role)
        inbox = client.get("/v1/inbox", params={"limit": 200}, headers=headers).json()
        assert {i["event_id"] for i in inbox["items"]} == {
            e for e, owner in world.inbox.items() if owner == partner
        }, partner


def _example(kind: str, name: str) -> dict[str, Any]:
    text = resources.files("connectors").joinpath(f"{kind}/examples/{name}").read_text("utf-8")
    return dict(json.loads(text))


def _referral_id_paths(doc: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Where a native message names a referral (its vermittlung id fields)."""
    if not isinstance(doc, dict):
        return []
    found = []
    for key, value in doc.items():
        if key.lower().replace("_", "") == "vermittlungid":
            found.append((*path, key))
        found += _referral_id_paths(value, (*path, key))
    return found


def _has_key(doc: Any, name: str) -> bool:
    if isinstance(doc, dict):
        return name in doc or any(_has_key(v, name) for v in doc.values())
    return False


def _status_examples() -> dict[str, dict[str, Any]]:
    """Per connector kind, its inbound status message (the one that names a referral)."""
    examples = {}
    for kind in ("authority", "chamber", "jobcenter", "university"):
        for entry in resources.files("connectors").joinpath(f"{kind}/examples").iterdir():
            if entry.name.startswith("inbound-"):
                doc = _example(kind, entry.name)
                if _referral_id_paths(doc) and _has_key(doc, "status"):
                    examples[kind] = doc
    return examples


def test_native_messages_cannot_reach_foreign_referrals(
    client: TestClient, partners: Partners, hub: Hub
) -> None:
    """A referral id inside a native body is held to the same rule as one in the path."""
    world = seed_world(client, partners, hub)
    examples = _status_examples()
    assert set(examples) == {"authority", "chamber", "jobcenter", "university"}
    before = snapshot(hub)
    failures = []
    attempts = 0
    for kind, example in examples.items():
        for partner in (p for p in world.partners if world.kinds[p] == kind):
            for ref in world.referrals:
                if partner in (ref.requester, ref.performer):
                    continue
                for where in _referral_id_paths(example):
                    message = copy.deepcopy(example)
                    _set(message, where, ref.id)
                    _set_message_id(message)
                    attempts += 1
                    r = client.post(
                        f"/v1/connectors/{kind}/messages",
                        json=message,
                        headers=world.headers[partner],
                    )
                    failure = problem_failure(r, 404)
                    if failure:
                        failures.append(f"{partner} -> {ref}: {failure}")
    assert failures == []
    assert attempts >= 8
    assert changes(before, snapshot(hub)) == {}


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _set_message_id(doc: dict[str, Any]) -> None:
    """A fresh message id, so that no idempotent replay answers for the hub."""
    if "nachricht_id" in doc:
        doc["nachricht_id"] = str(uuid.uuid4())
    head = doc.get("nachrichtenkopf")
    if isinstance(head, dict):
        head["nachrichtenUUID"] = str(uuid.uuid4())
