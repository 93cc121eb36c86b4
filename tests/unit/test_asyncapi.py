"""The AsyncAPI document: committed as generated, valid to the official parser, and true to
the models, the settings and the Kafka manifests (regenerate: python -m schemas.asyncapi)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from hub.audit.note import VerifierKey, open_checkpoint
from hub.settings import Settings
from schemas import asyncapi
from schemas.events import EVENT_DATA
from tests.contracts import run_node

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s" / "base"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(asyncapi.OUT.read_text(encoding="utf-8"))


def validate(path: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run_node("asyncapi_validate.mjs", path)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_committed_document_is_the_generated_one() -> None:
    assert asyncapi.OUT.read_text(encoding="utf-8") == asyncapi.text(), (
        "docs/asyncapi.json drifted; run python -m schemas.asyncapi"
    )


def test_the_official_parser_finds_no_error() -> None:
    code, diagnostics = validate(asyncapi.OUT)
    errors = [d for d in diagnostics if d["severity"] == 0]
    assert (code, errors) == (0, [])
    warnings = [d for d in diagnostics if d["severity"] == 1]
    assert warnings == []


def test_the_parser_reports_a_broken_document(doc: dict[str, Any], tmp_path: Path) -> None:
    broken = json.loads(json.dumps(doc))
    broken["operations"]["publishEvents"]["action"] = "publish"  # AsyncAPI 2 wording
    broken["operations"]["routeToPartner"]["messages"][0]["$ref"] += "-gone"
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    code, diagnostics = validate(path)
    errors = {d["path"] for d in diagnostics if d["severity"] == 0}
    assert code == 1
    assert "operations/publishEvents/action" in errors
    assert "operations/routeToPartner/messages/0/$ref" in errors


def test_every_event_type_has_a_message_with_its_schema(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"].values()
    types = {m["headers"]["properties"].get("ce_type", {}).get("const") for m in messages}
    assert set(EVENT_DATA) <= types
    for model in EVENT_DATA.values():
        schema = doc["components"]["schemas"][model.__name__]
        assert schema["title"] == model.__name__
        assert set(schema["required"]) == set(model.model_json_schema()["required"])


def test_examples_fit_their_schemas_and_models(doc: dict[str, Any]) -> None:
    root = {"components": doc["components"]}
    checked = 0
    for name, message in doc["components"]["messages"].items():
        for example in message.get("examples", []):
            payload = jsonschema_rs.validator_for({**root, "$ref": message["payload"]["$ref"]})
            assert [e.message for e in payload.iter_errors(example["payload"])] == [], name
            headers = jsonschema_rs.validator_for(message["headers"])
            assert [e.message for e in headers.iter_errors(example["headers"])] == [], name
            EVENT_DATA[message["name"]].model_validate(example["payload"])
            checked += 1
    assert checked >= 5


def test_a_schema_refuses_what_its_model_refuses(doc: dict[str, Any]) -> None:
    root = {"components": doc["components"]}
    change = doc["components"]["messages"]["referralStatusChanged"]["examples"][0]["payload"]
    schema = jsonschema_rs.validator_for(
        {**root, "$ref": "#/components/schemas/ReferralStatusChanged"}
    )
    assert not schema.is_valid({**change, "status": "approved"})
    assert not schema.is_valid({k: v for k, v in change.items() if k != "person_id"})


def test_the_checkpoint_example_verifies(doc: dict[str, Any]) -> None:
    example = doc["components"]["messages"]["auditCheckpointSigned"]["examples"][0]["payload"]
    checkpoint, _ = open_checkpoint(example["note"], [VerifierKey.parse(example["key"])])
    assert (checkpoint.origin, checkpoint.size) == (example["origin"], example["tree_size"])
    assert checkpoint.root.hex() == example["root_hash"]


def test_topics_are_those_of_the_settings(doc: dict[str, Any]) -> None:
    fields = Settings.model_fields
    addresses = {c["address"] for c in doc["channels"].values()}
    pattern = fields["topic_deliveries_prefix"].default + "{partner}"
    assert addresses == {
        fields["topic_events"].default,
        pattern + fields["topic_deliveries_suffix"].default,
        fields["topic_deadletter"].default,
        fields["topic_audit_checkpoints"].default,
    }
    partitions = {
        c["address"]: c["bindings"]["kafka"]["partitions"] for c in doc["channels"].values()
    }
    assert partitions[fields["topic_events"].default] == fields["events_partitions"].default
    assert partitions[asyncapi.DELIVERIES_TOPIC] == fields["deliveries_partitions"].default


def test_topics_are_those_of_the_manifests(doc: dict[str, Any]) -> None:
    manifests = {
        t["metadata"]["name"]: t["spec"]
        for t in yaml.safe_load_all((K8S / "kafka-topics.yaml").read_text(encoding="utf-8"))
    }
    for channel in doc["channels"].values():
        binding = channel["bindings"]["kafka"]
        name = channel["address"].replace("{partner}", "amt")
        spec = manifests[name]
        assert binding["partitions"] == spec["partitions"], name
        assert binding["topicConfiguration"]["retention.ms"] == spec["config"]["retention.ms"]


def test_production_server_is_the_scram_listener(doc: dict[str, Any]) -> None:
    kafka = next(yaml.safe_load_all((K8S / "kafka.yaml").read_text(encoding="utf-8")))
    name = kafka["metadata"]["name"]
    scram = [
        listener
        for listener in kafka["spec"]["kafka"]["listeners"]
        if listener.get("authentication", {}).get("type") == "scram-sha-512"
    ]
    assert len(scram) == 1 and scram[0]["tls"] is True
    server = doc["servers"]["production"]
    assert server["host"] == f"{name}-kafka-bootstrap:{scram[0]['port']}"
    assert server["protocol"] == "kafka-secure"
    (scheme,) = server["security"]
    assert doc["components"]["securitySchemes"][scheme["$ref"].rsplit("/", 1)[1]]["type"] == (
        "scramSha512"
    )
