"""The gateway's OpenAPI document, as code generators and linters read it.

Redocly (pinned under tests/contracts, rules in tests/contracts/redocly.yaml: ``recommended``)
must find no error; the document must say how to authenticate, which scope each operation
needs, where the server is, where a new referral is and when to retry after a 429.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from hub.auth.scopes import SCOPES
from tests.contracts import HERE, MODULES, run_node
from tests.hubtest import api_client, make_hub

REDOCLY = MODULES / "@redocly/cli/bin/cli.js"
METHODS = ("get", "post", "put", "patch", "delete")
#: What each partner operation needs, as the partner documentation promises it.
SCOPE_OF = {
    "createReferral": "referrals:write",
    "listReferrals": "referrals:read",
    "readReferral": "referrals:read",
    "changeStatus": "status:write",
    "postNativeMessage": "referrals:read",
    "recordConsent": "consent:write",
    "listConsents": "consent:read",
    "withdrawConsent": "consent:write",
    "readInbox": "inbox:read",
    "ackMessage": "inbox:read",
    "readTimeline": "timeline:read",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("openapi")
    hub, _ = make_hub(f"sqlite:///{data / 'hub.db'}", data)
    try:
        document: dict[str, Any] = api_client(hub).app.openapi()
    finally:
        hub.engine.dispose()
    return document


def operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (method, path, operation)."""
    return {
        op["operationId"]: (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def lint(spec: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Redocly's findings on the document: ``totals`` and ``problems``."""
    exported = tmp_path / "openapi.json"
    exported.write_text(json.dumps(spec, indent=1))
    config = HERE / "redocly.yaml"
    result = run_node(REDOCLY, "lint", exported, "--config", config, "--format=json")
    assert result.stdout.strip(), result.stderr
    findings: dict[str, Any] = json.loads(result.stdout)
    return findings


def test_redocly_recommended_rules_find_no_error(spec: dict[str, Any], tmp_path: Path) -> None:
    findings = lint(spec, tmp_path)
    errors = [p for p in findings["problems"] if p["severity"] == "error"]
    assert findings["totals"]["errors"] == 0, json.dumps(errors, indent=1)
    # What is left are warnings about operations that cannot fail with a 4xx (health, the
    # metadata, the public keys) and the missing licence; never a wrong example.
    rules = {p["ruleId"] for p in findings["problems"]}
    assert rules <= {"operation-4xx-response", "info-license"}, rules


def test_the_lint_fails_a_document_without_security_or_servers(
    spec: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(spec)
    del broken["components"]["securitySchemes"]
    del broken["servers"]
    findings = lint(broken, tmp_path)
    rules = {p["ruleId"] for p in findings["problems"] if p["severity"] == "error"}
    assert findings["totals"]["errors"] > 0
    assert {"security-defined", "no-empty-servers"} <= rules


def test_oauth2_client_credentials_names_every_scope_and_dpop(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    flow = schemes["OAuth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert set(flow["scopes"]) == set(SCOPES)
    assert all(flow["scopes"].values())
    assert "private_key_jwt" in schemes["OAuth2"]["description"]
    assert "RFC 9449" in schemes["OAuth2"]["description"]
    assert schemes["DPoP"] == {**schemes["DPoP"], "type": "apiKey", "in": "header", "name": "DPoP"}
    assert spec["servers"] == [{"url": "/", "description": spec["servers"][0]["description"]}]


def test_each_partner_operation_requires_its_scope_and_no_other_route_any(
    spec: dict[str, Any],
) -> None:
    found = {}
    for op_id, (_, path, op) in operations(spec).items():
        if path.startswith("/v1/"):
            assert op["security"][1]["DPoP"] == []
            found[op_id] = {s for req in op["security"] for s in req["OAuth2"]}
        else:
            assert op["security"] == [], path
    assert found == {op_id: {scope} for op_id, scope in SCOPE_OF.items()}


def test_operation_ids_are_unique_camel_case(spec: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in METHODS
    ]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if not re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", i)] == []
    assert {"createReferral", "readInbox", "listReferrals"} <= set(ids)


def test_a_new_referral_answers_202_with_its_location(spec: dict[str, Any]) -> None:
    _, _, op = operations(spec)["createReferral"]
    assert "Location" in op["responses"]["202"]["headers"]


def test_429_with_retry_after_exactly_where_the_throttle_meters(spec: dict[str, Any]) -> None:
    for _, (_, path, op) in operations(spec).items():
        metered = path.startswith("/v1/") or path == "/oauth/token"
        assert ("429" in op["responses"]) is metered, path
        if metered:
            assert "Retry-After" in op["responses"]["429"]["headers"], path


def test_each_operation_lists_only_the_errors_it_can_give(spec: dict[str, Any]) -> None:
    for op_id, (method, path, op) in operations(spec).items():
        if not path.startswith("/v1/"):
            continue
        codes = set(op["responses"])
        assert {"401", "403", "422"} <= codes, op_id
        assert ("404" in codes) is ("{" in path), op_id
        assert ("413" in codes) is ("requestBody" in op), op_id
        assert "415" not in codes, op_id
        if method == "get":
            assert not {"409", "413", "400"} & codes, op_id
        problem = op["responses"]["422"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_request_bodies_carry_examples_in_the_paths(spec: dict[str, Any]) -> None:
    for op_id in ("createReferral", "changeStatus", "recordConsent"):
        _, _, op = operations(spec)[op_id]
        assert op["requestBody"]["content"]["application/json"]["examples"], op_id


def test_every_error_answer_and_the_main_success_answers_have_valid_examples(
    spec: dict[str, Any],
) -> None:
    """Examples in the paths, each valid against the schema it illustrates."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:spec", document)

    def problems_with(example: Any, schema: dict[str, Any]) -> list[str]:
        root = {"$ref": "urn:spec#" + schema["$ref"][1:]} if "$ref" in schema else schema
        validator = Draft202012Validator(root, registry=registry)
        return [e.message for e in validator.iter_errors(example)]

    found = 0
    for op_id, (_, path, op) in operations(spec).items():
        if not path.startswith("/v1/"):
            continue
        for code, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if media == "application/problem+json" or op_id in {
                    "createReferral",
                    "readReferral",
                    "changeStatus",
                }:
                    assert "example" in content, (op_id, code, media)
                if "example" in content:
                    found += 1
                    assert problems_with(content["example"], content["schema"]) == [], (
                        op_id,
                        code,
                    )
                    if media == "application/problem+json":
                        assert content["example"]["status"] == int(code), (op_id, code)
    assert found > 40
