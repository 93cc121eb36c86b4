"""The Strimzi resources of deploy/k8s against models generated from Strimzi's v1 CRDs.

The vendored schemas in ``tests/unit/strimzi`` are strict about unknown keys but cover only
part of the ``Kafka`` resource (their README says which). The npm package
``@kubernetes-models/strimzi-kafka-operator`` (pinned in ``tests/contracts``) carries
validators compiled from the whole ``openAPIV3Schema`` of every ``kafka.strimzi.io/v1``
CRD: types, enums, ranges and required fields everywhere, unknown keys not refused (as a
Kubernetes structural schema prunes them). Together they cover both.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.contracts import run_node
from tests.unit.test_deploy_manifests import BASE, PRODUCTION, k8s_docs, one, strimzi_docs


def model_errors(docs: list[dict[str, Any]], tmp_path: Path) -> list[tuple[str, list[str]]]:
    """``(kind/name, what the generated validators refuse in it)`` for each resource."""
    given = tmp_path / "resources.json"
    given.write_text(json.dumps(docs), encoding="utf-8")
    done = run_node("strimzi_validate.mjs", given, timeout=60)
    assert done.returncode == 0, done.stderr
    return [(f"{r['kind']}/{r['name']}", r["errors"]) for r in json.loads(done.stdout)]


def production(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources with the production overlay's patches applied, as kustomize would: the
    overlay uses merge patches from files and JSON 6902 ``replace`` on a target; anything
    else fails here rather than being skipped."""
    patched = copy.deepcopy(docs)
    kustomization = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())
    for entry in kustomization.get("patches", []):
        if "path" in entry:
            patch = yaml.safe_load((PRODUCTION / entry["path"]).read_text())
            for doc in patched:
                if (doc["kind"], doc["metadata"]["name"]) == (
                    patch["kind"],
                    patch["metadata"]["name"],
                ):
                    _merge(doc, patch)
            continue
        target = entry["target"]
        for doc in patched:
            if doc["kind"] != target["kind"]:
                continue
            if "name" in target and not re.fullmatch(target["name"], doc["metadata"]["name"]):
                continue
            for op in yaml.safe_load(entry["patch"]):
                assert op["op"] == "replace", op
                *parents, last = op["path"].lstrip("/").split("/")
                node: Any = doc
                for key in parents:
                    node = node[int(key)] if isinstance(node, list) else node[key]
                assert (int(last) < len(node)) if isinstance(node, list) else last in node, op
                node[int(last) if isinstance(node, list) else last] = op["value"]
    return patched


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def test_every_strimzi_resource_passes_the_whole_v1_schema(tmp_path: Path) -> None:
    base = strimzi_docs(k8s_docs(BASE))
    docs = base + production(base)
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= {d["kind"] for d in docs}
    assert production(base) != base  # the overlay's patches did apply

    errors = model_errors(docs, tmp_path)

    assert len(errors) == len(docs)
    assert [(name, e) for name, e in errors if e] == []


def test_the_models_refuse_what_the_vendored_schemas_accept_unchecked(tmp_path: Path) -> None:
    """Fields the partial schemas take with their type only are checked to the value here."""
    docs = strimzi_docs(k8s_docs(BASE))
    kafka = copy.deepcopy(one(docs, "Kafka", "talent-hub"))
    kafka["spec"]["kafka"]["listeners"][0]["type"] = "nodeport-ish"
    pool = copy.deepcopy(next(d for d in docs if d["kind"] == "KafkaNodePool"))
    pool["spec"]["roles"] = ["leader"]
    user = copy.deepcopy(one(docs, "KafkaUser", "hub-relay"))
    user["spec"]["authentication"]["type"] = "scram-sha-1"

    errors = dict(model_errors([kafka, pool, user], tmp_path))

    assert any("listeners/0/type" in e for e in errors["Kafka/talent-hub"])
    assert any("roles" in e for e in errors[f"KafkaNodePool/{pool['metadata']['name']}"])
    assert any("authentication" in e for e in errors["KafkaUser/hub-relay"])
