"""The production profile refuses settings that would be unsafe or break across replicas."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from hub.settings import Settings

SAFE: dict[str, Any] = {
    "profile": "production",
    "database_url": "postgresql+psycopg://hub@db.internal/hub",
    "kafka_bootstrap_servers": "kafka-0.internal:9093",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "hub-relay",
    "kafka_sasl_password": "a-password-from-the-kafka-user-secret",
    "issuer": "https://hub.duisburg.de",
    "master_keys": {"k1": base64.b64encode(b"k" * 32).decode()},
    "master_key_id": "k1",
}


def test_a_complete_production_configuration_loads() -> None:
    assert Settings(**SAFE).profile == "production"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database_url": None}, "HUB_DATABASE_URL"),
        ({"database_url": "sqlite:///hub.db"}, "HUB_DATABASE_URL"),
        ({"kafka_bootstrap_servers": None}, "HUB_KAFKA_BOOTSTRAP_SERVERS"),
        ({"issuer": "http://hub.duisburg.de"}, "HUB_ISSUER"),
        ({"master_key_id": "k2"}, "HUB_MASTER_KEY_ID"),
        ({"dpop_nonce_required": True}, "HUB_DPOP_NONCE_SECRET"),
        ({"clock_time_unit_seconds": 0.5}, "HUB_CLOCK_TIME_UNIT_SECONDS"),
        ({"kafka_security_protocol": "PLAINTEXT"}, "HUB_KAFKA_ALLOW_PLAINTEXT"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "HUB_KAFKA_ALLOW_PLAINTEXT"),
    ],
)
def test_unsafe_production_settings_are_refused_by_name(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**(SAFE | change))


def test_dpop_nonces_with_a_shared_secret_load() -> None:
    settings = Settings(**(SAFE | {"dpop_nonce_required": True, "dpop_nonce_secret": "s" * 32}))
    assert settings.dpop_nonce_required


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_kafka_without_tls_needs_an_explicit_yes(protocol: str) -> None:
    values = SAFE | {"kafka_security_protocol": protocol, "kafka_allow_plaintext": True}
    if protocol == "PLAINTEXT":
        values = {k: v for k, v in values.items() if not k.startswith("kafka_sasl_")}
    assert Settings(**values).kafka_security_protocol == protocol
