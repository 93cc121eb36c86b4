"""The deployment files in deploy/ agree with the code: settings, topics, consumers, ports.

No network and no docker: the files are parsed and compared with what the code names
(hub.settings, hub.runtime.topic_plan, consumers.registry, the `hub` CLI, the app's routes).
Only the last test renders the Kustomize overlays, and only where kubectl is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from consumers import registry
from hub import cli, runtime
from hub.auth.routes import router as auth_router
from hub.health import router as health_router
from hub.partners.service import DEMO_PARTNERS
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
OVERLAYS = [BASE, PRODUCTION]
STRIMZI_SCHEMAS = Path(__file__).resolve().parent / "strimzi"
STRIMZI_API = "kafka.strimzi.io/v1"
# Kafka versions that both Strimzi 1.1.0 and 1.2.0 run (their release notes); 1.1 dropped 4.1.
STRIMZI_KAFKA_VERSIONS = {"4.2.0", "4.2.1", "4.3.0"}


# Partners onboarded after the first catalogue whose deliveries topic deploy/ creates too
# (docs/operations.md, "Onboarding a partner"); a topic for anyone else is a typo.
ONBOARDED_PARTNERS: tuple[str, ...] = ()

# Settings whose values are secrets: only ever a secretKeyRef (Kubernetes) or deploy/.env.
SECRET_SETTINGS = {
    "HUB_DATABASE_URL",
    "HUB_MASTER_KEYS",
    "HUB_MASTER_KEY_ID",
    "HUB_STAFF_OIDC_CLIENT_SECRET",
}

# Stand-ins for secretKeyRef values when the production checks of Settings run.
FAKE_SECRETS = {
    "HUB_DATABASE_URL": "postgresql+psycopg://hub:x@db:5432/hub",
    "HUB_MASTER_KEYS": '{"k1": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}',
    "HUB_MASTER_KEY_ID": "k1",
}

# What every pod adds to the ConfigMap besides secrets (its KafkaUser differs per pod).
POD_SETTINGS = {"HUB_KAFKA_SASL_USERNAME": "hub-relay"}

# Settings naming files that the pods mount from Strimzi's Secrets (kafka_security_env).
MOUNTED_FILE_SETTINGS = {"HUB_KAFKA_SSL_CAFILE", "HUB_KAFKA_SASL_PASSWORD_FILE"}

HUB_NAME = re.compile(r"\bHUB_[A-Z0-9_]+\b")
#: consumers/registry.py: group ``hub.<name>``, push delivery ``hub.delivery.<partner>``.
DELIVERY_GROUP_PREFIX = "hub.delivery."


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() here sees only what a test sets, not the developer's environment."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose .env and kustomize env files); quotes stripped, # comments."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:?err}, ${NAME:-default} and $$."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in variables and variables[name] != "":
            return variables[name]
        assert op != ":?", f"${{{name}}} is required but not in deploy/.env.example"
        return arg if op == ":-" else ""

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:\?|:-)([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def dockerfile_entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), flags=re.M)
    assert match, "deploy/Dockerfile has no exec-form ENTRYPOINT"
    entrypoint = json.loads(match.group(1))
    assert isinstance(entrypoint, list)
    return [str(x) for x in entrypoint]


def hub_services() -> dict[str, dict[str, Any]]:
    """Compose services that run the hub's image."""
    services = compose()["services"]
    return {name: s for name, s in services.items() if "build" in s}


def compose_argv(service: dict[str, Any]) -> list[str]:
    entrypoint = service.get("entrypoint") or dockerfile_entrypoint()
    return [*entrypoint, *service.get("command", [])]


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """What a hub container sees: deploy/.env (from .env.example) plus its environment."""
    variables = dotenv(ENV_EXAMPLE)
    env = dict(variables) if service.get("env_file") else {}
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "use the mapping form of environment"
    env.update({k: interpolate(str(v), variables) for k, v in environment.items()})
    return env


def k8s_docs(directory: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_all(path)
    return docs


def kustomization(directory: Path) -> dict[str, Any]:
    doc = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def config_env(*directories: Path) -> dict[str, str]:
    """The generated ConfigMap hub-config: base env file, overlays merged over it."""
    env: dict[str, str] = {}
    for directory in directories:
        for generator in kustomization(directory).get("configMapGenerator", []):
            if generator["name"] == "hub-config":
                for name in generator.get("envs", []):
                    env.update(dotenv(directory / name))
    return env


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    workloads = {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in workloads
    ] + [
        (d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] == "CronJob"
    ]


def containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container of every workload."""
    return [
        (name, pod, c)
        for name, pod in pod_specs(docs)
        for c in pod.get("initContainers", []) + pod["containers"]
    ]


def container_env(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source.get("configMapRef", {}).get("name") == "hub-config", source
        env.update(config)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = FAKE_SECRETS.get(item["name"], "from-a-secret")
    return env


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Settings as a process with this environment would build them (files that Secrets
    mount in the pod are stand-ins here: Settings refuses a path that is not a file)."""
    with tempfile.TemporaryDirectory() as mounted:
        for name, value in env.items():
            if name in MOUNTED_FILE_SETTINGS:
                value = str(Path(mounted) / name)
                Path(value).write_text("stand-in for a mounted Secret", encoding="utf-8")
            if name.startswith("HUB_"):
                monkeypatch.setenv(name, value)
        return Settings()


def code_topic_plan(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> dict[str, int]:
    """hub.runtime.topic_plan for the first catalogue's partners (and onboarded ones)."""
    partners = [pid for pid, _, _ in DEMO_PARTNERS] + list(ONBOARDED_PARTNERS)
    monkeypatch.setattr(runtime, "partner_ids", lambda session, **_: partners)
    fake_hub = SimpleNamespace(settings=settings, session_factory=contextlib.nullcontext)
    plan = runtime.topic_plan(fake_hub)  # type: ignore[arg-type]
    # The names the settings give.
    expected_names = {settings.topic_events, settings.topic_deadletter}
    expected_names |= {settings.topic_audit_checkpoints, settings.topic_broker_epoch}
    expected_names |= {settings.deliveries_topic(p) for p in partners}
    assert set(plan) == expected_names
    assert plan[settings.topic_events] == settings.events_partitions
    return plan


def registered_consumers() -> set[str]:
    """`hub consume NAME`: the generic runners plus push delivery (consumers/registry.py)."""
    assert callable(registry.build_delivery_runners)
    names = set(registry.NAMES) | {"delivery"}
    param = next(p for p in cli.main.commands["consume"].params if p.name == "name")
    choices = param.type.choices  # type: ignore[attr-defined]
    assert names <= set(choices), "the CLI does not accept every registered consumer"
    return names


def resolve_port(port: int | str, container: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"named port {port!r} is not declared by the container"
    return int(named[port])


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


# ------------------------------------------------------------------------------ files


def test_the_deployment_files_are_there() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in yaml_files()}
    assert {"compose.yaml", "otel-collector.yaml", "k8s/base/kustomization.yaml"} <= names
    assert {"k8s/overlays/production/kustomization.yaml"} <= names
    assert DOCKERFILE.is_file() and ENV_EXAMPLE.is_file()


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} holds no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document that is not a mapping"
    if path.parent in {BASE, PRODUCTION} and path.name != "kustomization.yaml":
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path}: {doc.keys()}"


# ------------------------------------------------------------------------------ settings


def test_every_hub_variable_in_deploy_is_a_setting() -> None:
    known = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    used: dict[str, set[str]] = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for name in HUB_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(path.relative_to(DEPLOY).as_posix())
    # The scan sees the structured places too (not vacuous).
    structured = set(compose_env(hub_services()["gateway"])) | set(dotenv(ENV_EXAMPLE))
    structured |= set(config_env(BASE, PRODUCTION))
    for _, _, container in containers(k8s_docs(BASE)):
        structured |= {item["name"] for item in container.get("env", [])}
    assert {n for n in structured if n.startswith("HUB_")} <= set(used)
    unknown = {name: sorted(where) for name, where in used.items() if name not in known}
    assert not unknown, f"HUB_ variables that hub.settings.Settings does not have: {unknown}"


def test_compose_environment_passes_the_production_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = hub_services()
    assert services, "compose runs no hub container"
    for name, service in services.items():
        env = compose_env(service)
        assert env.get("HUB_PROFILE") == "production", name
        with monkeypatch.context() as m:
            settings = settings_from(m, env)  # raises if production would refuse
        assert settings.kafka_bootstrap_servers == "kafka:9092", name
        assert settings.database_url and "@postgres:5432/" in settings.database_url, name


def test_kubernetes_environment_passes_the_production_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for directories in ([BASE], [BASE, PRODUCTION]):
        config = config_env(*directories)
        for name, _, container in containers(k8s_docs(BASE)):
            env = container_env(container, config)
            assert env.get("HUB_PROFILE") == "production", name
            with monkeypatch.context() as m:
                settings_from(m, env)  # raises if production would refuse


def mounted_secret(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) of the file at ``path`` in the container; fails if none mounts it."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        relative = os.path.relpath(path, mount["mountPath"])
        if relative.startswith(".."):
            continue
        secret = volumes[mount["name"]].get("secret")
        assert secret, f"{path} is mounted from {mount['name']}, not from a Secret"
        assert mount.get("readOnly") is True, mount["name"]
        keys = {item["path"]: item["key"] for item in secret.get("items", [])}
        return secret["secretName"], keys.get(relative, relative)
    raise AssertionError(f"nothing is mounted at {path}")


def test_every_hub_container_reaches_kafka_over_tls_as_its_kafka_user() -> None:
    docs = k8s_docs(BASE)
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    cluster = kafka["metadata"]["name"]
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(x["tls"] and x["authentication"]["type"] == "scram-sha-512" for x in listeners)
    ports = {x["port"] for x in listeners}
    users = {d["metadata"]["name"] for d in docs if d["kind"] == "KafkaUser"}
    checked = 0
    for name, pod, container in containers(docs):
        env = container_env(container, config_env(BASE, PRODUCTION))
        assert env["HUB_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["HUB_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        servers = env["HUB_KAFKA_BOOTSTRAP_SERVERS"].split(",")
        assert {int(s.rpartition(":")[2]) for s in servers} <= ports, name
        assert "HUB_KAFKA_ALLOW_PLAINTEXT" not in env, name
        assert "HUB_KAFKA_SSL_CHECK_HOSTNAME" not in env, name
        user = env["HUB_KAFKA_SASL_USERNAME"]
        assert user in users, f"{name}: {user} is no KafkaUser"
        ca = mounted_secret(pod, container, env["HUB_KAFKA_SSL_CAFILE"])
        assert ca == (f"{cluster}-cluster-ca-cert", "ca.crt"), name
        password = mounted_secret(pod, container, env["HUB_KAFKA_SASL_PASSWORD_FILE"])
        assert password == (user, "password"), name
        checked += 1
    assert checked >= 8


def test_secrets_are_only_referenced() -> None:
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in load_all(path):
            assert doc.get("kind") != "Secret", f"{path}: secret values belong in the cluster"
    for directory in OVERLAYS:
        assert not SECRET_SETTINGS & set(config_env(directory)), "a secret in a ConfigMap"
        assert not kustomization(directory).get("secretGenerator"), directory
    for name, _, container in containers(k8s_docs(BASE)):
        for item in container.get("env", []):
            if item["name"] in SECRET_SETTINGS:
                assert "secretKeyRef" in item.get("valueFrom", {}), (name, item["name"])
    for name, service in hub_services().items():
        for key, value in (service.get("environment") or {}).items():
            if key in SECRET_SETTINGS:
                assert "${" in str(value), f"{name}: {key} must come from deploy/.env"
    for key, value in dotenv(ENV_EXAMPLE).items():
        if key in SECRET_SETTINGS | {"POSTGRES_PASSWORD"} and key != "HUB_MASTER_KEY_ID":
            assert "REPLACE" in value, f".env.example: {key} must be a placeholder"


# ------------------------------------------------------------------------------ gateway


def test_dockerfile_runs_the_hub_entry_point_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[.\d]*-slim", text, flags=re.M)
    assert dockerfile_entrypoint() == ["hub"]
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"


def test_compose_gateway_serves_health_on_its_port() -> None:
    gateway = hub_services()["gateway"]
    assert compose_argv(gateway) == ["hub", "gateway"]
    env = compose_env(gateway)
    assert env["HUB_HTTP_HOST"] == "0.0.0.0", "in a container the gateway must bind 0.0.0.0"
    port = int(env.get("HUB_HTTP_PORT", Settings.model_fields["http_port"].default))
    probe = " ".join(gateway["healthcheck"]["test"])
    assert re.search(rf"//(127\.0\.0\.1|localhost):{port}/health\b", probe), probe
    assert any(str(p).endswith(f":{port}") for p in gateway["ports"]), gateway["ports"]
    for name, service in hub_services().items():
        if compose_argv(service)[1:2] == ["gateway"]:
            assert name == "gateway"


def route_paths(routes: list[Any]) -> list[str]:
    """The paths of routes, also of those in a router included without a prefix (FastAPI
    lists such a router as one wrapper that holds the original)."""
    found: list[str] = []
    for route in routes:
        if hasattr(route, "path"):
            found.append(route.path)
        elif hasattr(route, "original_router"):
            found += route_paths(route.original_router.routes)
    return found


def test_kubernetes_gateway_probes_and_ports_match_the_app() -> None:
    app_paths = set(route_paths([*health_router.routes, *auth_router.routes]))
    docs = k8s_docs(BASE)
    for directories in ([BASE], [BASE, PRODUCTION]):
        config = config_env(*directories)
        assert config["HUB_HTTP_HOST"] == "0.0.0.0", "in a pod the gateway must bind 0.0.0.0"
        port = int(config.get("HUB_HTTP_PORT", Settings.model_fields["http_port"].default))
        gateway = one(docs, "Deployment", "talent-hub-gateway")
        (container,) = gateway["spec"]["template"]["spec"]["containers"]
        assert [*container["command"], *container["args"]] == ["hub", "gateway"]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            if kind in container:
                http = container[kind]["httpGet"]
                assert http["path"] in app_paths, f"{kind} {http['path']} is not a route"
                assert resolve_port(http["port"], container) == port, kind
        service = one(docs, "Service", "talent-hub-gateway")
        selector = service["spec"]["selector"]
        labels = gateway["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        for p in service["spec"]["ports"]:
            assert resolve_port(p["targetPort"], container) == port
        hpa = one(docs, "HorizontalPodAutoscaler", "talent-hub-gateway")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "talent-hub-gateway"
    # Only the gateway serves HTTP; nothing else claims the command.
    for name, _, container in containers(docs):
        if [*container.get("command", []), *container.get("args", [])][:2] == ["hub", "gateway"]:
            assert name == "talent-hub-gateway"


# ------------------------------------------------------------------------------ topics


def compose_topics() -> dict[str, tuple[int, int]]:
    """Topic -> (partitions, replication factor) as the compose kafka-init job creates them."""
    init = compose()["services"]["kafka-init"]
    script = "\n".join(init["command"]).replace("$$", "$")
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    created: dict[str, tuple[int, int]] = {}
    for line in script.splitlines():
        if "--create" not in line:
            continue
        args = shlex.split(line)
        topic = args[args.index("--topic") + 1]
        assert topic not in created, f"{topic} created twice"
        partitions = int(args[args.index("--partitions") + 1])
        replication = int(args[args.index("--replication-factor") + 1])
        created[topic] = (partitions, replication)
    return created


def test_compose_creates_the_codes_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, compose_env(hub_services()["relay"]))
    plan = code_topic_plan(monkeypatch, settings)
    created = compose_topics()
    assert {t: p for t, (p, _) in created.items()} == plan
    # One broker: a higher replication factor could never be satisfied.
    assert {r for _, r in created.values()} == {1}
    init = compose()["services"]["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in hub_services().items():
        if name in {"gateway", "relay"} or compose_argv(service)[1:2] == ["consume"]:
            assert service["depends_on"]["kafka-init"]["condition"] == (
                "service_completed_successfully"
            ), name
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            ), name


def test_kafka_topic_resources_are_the_codes_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        monkeypatch, {**FAKE_SECRETS, **POD_SETTINGS, **config_env(BASE, PRODUCTION)}
    )
    plan = code_topic_plan(monkeypatch, settings)
    docs = k8s_docs(BASE)
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    topics = [d for d in docs if d["kind"] == "KafkaTopic"]
    names = [d["spec"].get("topicName", d["metadata"]["name"]) for d in topics]
    assert len(names) == len(set(names)), "a topic is declared twice"
    assert {n: d["spec"]["partitions"] for n, d in zip(names, topics, strict=True)} == plan
    assert {n: p for n, (p, _) in compose_topics().items()} == plan
    brokers = sum(
        d["spec"]["replicas"]
        for d in docs
        if d["kind"] == "KafkaNodePool" and "broker" in d["spec"]["roles"]
    )
    for name, doc in zip(names, topics, strict=True):
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert doc["spec"]["replicas"] <= brokers, name
    for pool in (d for d in docs if d["kind"] == "KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_overlays_leave_partition_counts_alone() -> None:
    """Partition counts are checked in the base; an overlay changing them must say so here."""

    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    for patch in kustomization(PRODUCTION).get("patches", []):
        if "path" in patch:
            docs = load_all(PRODUCTION / patch["path"])
        else:
            docs = [yaml.safe_load(patch["patch"])]
        for doc in docs:
            paths = [op.get("path", "") for op in doc] if isinstance(doc, list) else []
            assert "partitions" not in keys(doc) and not any("partitions" in p for p in paths), (
                f"the production overlay changes partition counts ({patch}): extend this test "
                "with the override and set HUB_EVENTS_PARTITIONS / HUB_DELIVERIES_PARTITIONS"
            )


def test_kafka_acls_name_only_the_codes_topics_and_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_from(
        monkeypatch, {**FAKE_SECRETS, **POD_SETTINGS, **config_env(BASE, PRODUCTION)}
    )
    topics = set(code_topic_plan(monkeypatch, settings))
    groups = {f"hub.{name}" for name in registry.NAMES}
    docs = k8s_docs(BASE)
    (kafka,) = [d for d in docs if d["kind"] == "Kafka"]
    users = [d for d in docs if d["kind"] == "KafkaUser"]
    assert users
    granted_groups: set[str] = set()
    for user in users:
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        for acl in user["spec"]["authorization"]["acls"]:
            resource = acl["resource"]
            kind, name, pattern = resource["type"], resource["name"], resource["patternType"]
            where = f"{user['metadata']['name']}: {kind} {name} ({pattern})"
            assert "All" not in acl["operations"], where
            if kind == "topic" and pattern == "literal":
                assert name in topics, where
            elif kind == "topic":
                assert name == settings.topic_deliveries_prefix, where
            elif kind == "group" and pattern == "literal":
                assert name in groups, where
                granted_groups.add(name)
            elif kind == "group":
                assert name == DELIVERY_GROUP_PREFIX, where
                granted_groups.add(name)
            else:
                pytest.fail(f"unexpected ACL {where}")
    assert granted_groups == groups | {DELIVERY_GROUP_PREFIX}


def strimzi_schema(kind: str) -> dict[str, Any]:
    schema = yaml.safe_load((STRIMZI_SCHEMAS / f"{kind.lower()}.v1.yaml").read_text())
    assert isinstance(schema, dict)
    return schema


def strimzi_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(strimzi_schema(doc["kind"]))
    return [
        f"{doc['kind']} {doc['metadata']['name']}: {'.'.join(map(str, e.absolute_path))}: "
        f"{e.message}"
        for e in validator.iter_errors(doc)
    ]


def strimzi_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if str(d.get("apiVersion", "")).startswith("kafka.strimzi.io/")]


def test_strimzi_resources_use_the_v1_api() -> None:
    """Strimzi 1.x serves only kafka.strimzi.io/v1: anything older is refused on apply."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in strimzi_docs(load_all(path)):
            found.append(doc["kind"])
            assert doc["apiVersion"] == STRIMZI_API, f"{path}: {doc['apiVersion']}"
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= set(found)


def test_strimzi_resources_match_the_v1_schemas() -> None:
    docs = strimzi_docs(k8s_docs(BASE))
    assert len(docs) >= 10
    errors = [error for doc in docs for error in strimzi_errors(doc)]
    assert not errors, "\n".join(errors)


def test_the_strimzi_schemas_reject_what_v1_removed() -> None:
    """The vendored schemas catch the v1beta2 leftovers that Strimzi 1.x refuses."""
    docs = strimzi_docs(k8s_docs(BASE))
    user = json.loads(json.dumps(one(docs, "KafkaUser", "hub-relay")))
    acl = user["spec"]["authorization"]["acls"][0]
    acl["operation"] = acl.pop("operations")[0]
    assert any("operation" in e for e in strimzi_errors(user))
    kafka = json.loads(json.dumps(one(docs, "Kafka", "talent-hub")))
    kafka["spec"]["kafka"]["replicas"] = 1
    assert any("replicas" in e for e in strimzi_errors(kafka))
    topic = json.loads(json.dumps(one(docs, "KafkaTopic", "hub.events.v1")))
    topic["spec"]["partitions"] = 0
    assert strimzi_errors(topic)


def test_the_kafka_version_is_one_strimzi_runs() -> None:
    (kafka,) = [d for d in k8s_docs(BASE) if d["kind"] == "Kafka"]
    assert kafka["spec"]["kafka"]["version"] in STRIMZI_KAFKA_VERSIONS
    # KRaft and node pools are the only mode in v1; the old opt-in annotations are noise.
    annotations = kafka["metadata"].get("annotations", {})
    assert not {"strimzi.io/kraft", "strimzi.io/node-pools"} & set(annotations)


# ------------------------------------------------------------------------------ consumers


def consume_name(argv: list[str]) -> str | None:
    if argv[:2] == ["hub", "consume"]:
        assert len(argv) == 3, argv
        return argv[2]
    return None


def test_every_consumer_in_compose_is_registered() -> None:
    registered = registered_consumers()
    run = [consume_name(compose_argv(s)) for s in hub_services().values()]
    used = [n for n in run if n is not None]
    assert set(used) <= registered, set(used) - registered
    assert sorted(used) == sorted(registered), "each consumer exactly once"


def test_every_consumer_in_kubernetes_is_registered() -> None:
    registered = registered_consumers()
    used = []
    for name, _, container in containers(k8s_docs(BASE)):
        consumer = consume_name([*container.get("command", []), *container.get("args", [])])
        if consumer is not None:
            assert consumer in registered, (name, consumer)
            assert name == f"talent-hub-consumer-{consumer}", name
            used.append(consumer)
    assert sorted(used) == sorted(registered), "one Deployment per consumer group"


# ------------------------------------------------------------------------------ Kubernetes


def test_pods_run_locked_down_with_resources() -> None:
    checked = 0
    for name, pod, container in containers(k8s_docs(BASE)):
        checked += 1
        security = container.get("securityContext", {})
        pod_security = pod.get("securityContext", {})
        assert security.get("readOnlyRootFilesystem") is True, name
        assert security.get("allowPrivilegeEscalation") is False, name
        assert "ALL" in security.get("capabilities", {}).get("drop", []), name
        assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
        assert pod.get("automountServiceAccountToken") is False, name
        assert pod.get("enableServiceLinks") is False, f"{name}: service links inject HUB_…"
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container.get("resources", {}).get(part, {})), name
    assert checked >= 8


def test_every_hub_command_the_pods_run_exists() -> None:
    runs = [[*c.get("command", []), *c.get("args", [])] for _, _, c in containers(k8s_docs(BASE))]
    hub_runs = [argv[1:] for argv in runs if argv[:1] == ["hub"]]
    assert len(hub_runs) >= 9
    for argv in hub_runs:
        result = CliRunner().invoke(cli.main, [*argv, "--help"])
        assert result.exit_code == 0, f"hub {' '.join(argv)}: {result.output}"


@pytest.mark.parametrize("job", ["retention", "housekeeping"])
def test_the_nightly_jobs_run_one_at_a_time(job: str) -> None:
    cron = one(k8s_docs(BASE), "CronJob", f"talent-hub-{job}")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert [*container["command"], *container["args"]] == ["hub", job]


def test_there_is_a_default_deny_network_policy() -> None:
    policies = [d for d in k8s_docs(BASE) if d["kind"] == "NetworkPolicy"]
    assert any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    )


def test_every_pod_has_a_disruption_budget() -> None:
    docs = k8s_docs(BASE)
    budgets = [
        d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"
    ]
    for d in docs:
        if d["kind"] == "Deployment":
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert any(b.items() <= labels.items() for b in budgets), d["metadata"]["name"]


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: p.relative_to(K8S).as_posix())
def test_kustomizations_name_existing_files(directory: Path) -> None:
    k = kustomization(directory)
    for entry in k.get("resources", []):
        assert (directory / entry).exists(), f"{directory.name}: {entry}"
    for patch in k.get("patches", []):
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), patch["path"]
    for generator in k.get("configMapGenerator", []):
        for name in generator.get("envs", []) + generator.get("files", []):
            assert (directory / name).is_file(), name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_the_production_overlay_renders_consistently(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(PRODUCTION)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    settings = settings_from(monkeypatch, {**FAKE_SECRETS, **POD_SETTINGS, **config["data"]})
    plan = code_topic_plan(monkeypatch, settings)
    topics = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    assert {n: s["partitions"] for n, s in topics.items()} == plan
    brokers = sum(
        d["spec"]["replicas"]
        for d in docs
        if d["kind"] == "KafkaNodePool" and "broker" in d["spec"]["roles"]
    )
    assert brokers >= 3
    for name, spec in topics.items():
        assert spec["replicas"] <= brokers, name
        assert int(spec["config"]["min.insync.replicas"]) < spec["replicas"], name
    errors = [error for doc in strimzi_docs(docs) for error in strimzi_errors(doc)]
    assert not errors, "\n".join(errors)
    for name, _, container in containers(docs):
        refs = [s["configMapRef"]["name"] for s in container.get("envFrom", [])]
        assert refs == [config["metadata"]["name"]], name
        assert container["image"].rsplit(":", 1)[-1] != "latest", name
