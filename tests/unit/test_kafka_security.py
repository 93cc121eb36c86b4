"""Kafka TLS and SASL settings: refused when incomplete, passed to kafka-python unchanged,
and the password never shown."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.net.sasl import get_sasl_mechanism
from pydantic import ValidationError

from hub import logs
from hub.kafka.security import PLAINTEXT, KafkaSecurity
from hub.settings import Settings

PASSWORD = "s3cr3t-Kafka-Pa55"
BROKERS = {"kafka_bootstrap_servers": "kafka-0.internal:9093"}


@pytest.fixture(autouse=True)
def _no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


def sasl(mechanism: str = "SCRAM-SHA-512", **changes: Any) -> Settings:
    values: dict[str, Any] = {
        **BROKERS,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": "hub-relay",
        "kafka_sasl_password": PASSWORD,
    }
    return Settings(**(values | changes))


def consumer_config(security: KafkaSecurity) -> dict[str, Any]:
    """What kafka-python keeps of the options (port 9: nothing listens, nothing is sent)."""
    consumer = KafkaConsumer(
        bootstrap_servers="127.0.0.1:9", api_version=(2, 8), **security.client_options()
    )
    try:
        return dict(consumer.config)
    finally:
        consumer.close()


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    security = KafkaSecurity.from_settings(Settings())
    assert security == PLAINTEXT
    assert security.client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_sasl_options_reach_kafka_python_unchanged(mechanism: str) -> None:
    security = KafkaSecurity.from_settings(sasl(mechanism))
    config = consumer_config(security)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == mechanism
    assert config["sasl_plain_username"] == "hub-relay"
    assert config["sasl_plain_password"] == PASSWORD
    assert config["ssl_context"] is security.ssl_context is not None
    assert config["ssl_context"].check_hostname
    # kafka-python's own mechanism takes them: its first message names the user.
    first = get_sasl_mechanism(mechanism)(host="kafka-0.internal", **config).auth_bytes()
    assert b"hub-relay" in first


def test_the_password_is_read_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")  # a trailing newline from `echo` is not the password
    settings = sasl(kafka_sasl_password=None, kafka_sasl_password_file=secret)
    options = KafkaSecurity.from_settings(settings).client_options()
    assert options["sasl_plain_password"] == PASSWORD


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_password_never_shows(tmp_path: Path, fmt: str) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    settings = sasl(kafka_sasl_password=None, kafka_sasl_password_file=secret)
    security = KafkaSecurity.from_settings(settings)
    stream = io.StringIO()
    root = logging.getLogger()
    handler, level = logs.handler(fmt, stream), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        consumer_config(security)  # kafka-python logging at DEBUG while it takes them
        log = logging.getLogger("hub.kafka")
        log.info("kafka.security", extra={"security": security, "settings": settings})
        log.info("kafka.settings %r %s", settings, security)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    written = stream.getvalue()
    assert "hub-relay" in written  # what was logged is there, only the password is not
    assert PASSWORD not in written
    assert PASSWORD not in repr(security) + str(security) + repr(sasl()) + str(sasl())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kafka_sasl_mechanism": None}, "HUB_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_username": None}, "HUB_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": None}, "HUB_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_password": ""}, "HUB_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"kafka_ssl_cafile": "/nowhere/ca.crt"}, "HUB_KAFKA_SSL_CAFILE: no such file"),
        ({"kafka_sasl_password_file": "/nowhere/password"}, "no such file"),
    ],
)
def test_incomplete_sasl_settings_are_refused_by_name(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        sasl(**changes)


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("\n")
    with pytest.raises(ValidationError, match="HUB_KAFKA_SASL_PASSWORD"):
        sasl(kafka_sasl_password=None, kafka_sasl_password_file=tmp_path / "password")


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "user.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="HUB_KAFKA_SSL_CERTFILE and HUB_KAFKA_SSL_KEYFILE"):
        Settings(**BROKERS, kafka_security_protocol="SSL", kafka_ssl_certfile=cert)


def test_tls_files_without_tls_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ValidationError, match="SSL or SASL_SSL"):
        Settings(**BROKERS, kafka_ssl_cafile=ca)


def test_the_embedded_broker_is_plaintext_only() -> None:
    with pytest.raises(ValidationError, match="embedded broker speaks PLAINTEXT only"):
        Settings(kafka_security_protocol="SSL")


def test_hostname_verification_can_be_switched_off_explicitly() -> None:
    security = KafkaSecurity.from_settings(sasl(kafka_ssl_check_hostname=False))
    assert security.ssl_context is not None
    assert not security.ssl_context.check_hostname
    assert consumer_config(security)["ssl_check_hostname"] is False
