"""The hub's Kafka clients authenticating with SASL/SCRAM, through a SCRAM front (``scramp``)
in front of the embedded broker.

The broker advertises the front's address, so every connection a client makes after
bootstrapping goes through the front as well; the front lets a connection through only after
a SCRAM exchange and counts what it saw (tests/integration/sasl_front.py).
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub.kafka.client import broker_state, ensure_topics, make_consumer, make_producer
from hub.kafka.embedded import EmbeddedBroker, free_port
from hub.kafka.security import PLAINTEXT, KafkaSecurity
from hub.settings import Settings
from tests.hubtest import make_hub
from tests.integration.conftest import wait_for
from tests.integration.sasl_front import SaslFront
from tests.integration.test_kafka_tls import Authority, Stunnel, referral_reaches_amt_inbox

pytestmark = pytest.mark.integration

TOPIC = "sasl.check.v1"
USER = "hub-relay"
PASSWORD = "Scram-Test-Pa55word"


@dataclass
class Sasl:
    """A broker reachable only through the SCRAM front (it advertises the front's address)."""

    broker: EmbeddedBroker
    front: SaslFront
    directory: Path

    def settings(
        self, mechanism: str = "SCRAM-SHA-512", password: str = PASSWORD, **changes: Any
    ) -> Settings:
        """Hub settings for the front, the password read from a file as in a pod."""
        secret = self.directory / f"password-{uuid.uuid4().hex[:8]}"
        secret.write_text(password + "\n")
        values: dict[str, Any] = {
            "data_dir": self.directory,
            "kafka_bootstrap_servers": self.front.address,
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": USER,
            "kafka_sasl_password_file": secret,
        }
        return Settings(**(values | changes))

    def security(self, mechanism: str = "SCRAM-SHA-512", **changes: Any) -> KafkaSecurity:
        return KafkaSecurity.from_settings(self.settings(mechanism, **changes))


@pytest.fixture
def sasl(tmp_path: Path) -> Iterator[Sasl]:
    port = free_port()
    with (
        EmbeddedBroker(log_path=tmp_path / "broker.log", advertised=f"127.0.0.1:{port}") as b,
        SaslFront(port=port, backend=b.port) as front,
    ):
        front.add_user(USER, PASSWORD)
        yield Sasl(broker=b, front=front, directory=tmp_path)


def reader(bootstrap: str, security: KafkaSecurity) -> KafkaConsumer:
    """A consumer without a group, for looking at the broker."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_options()
    )


def produced(bootstrap: str, security: KafkaSecurity, topic: str) -> int:
    """Records in the topic, counted by a client that authenticates."""
    consumer = reader(bootstrap, security)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        consumer.close()


def advertised(bootstrap: str, security: KafkaSecurity) -> set[tuple[str, int]]:
    """The broker addresses the metadata names."""
    consumer = reader(bootstrap, security)
    try:
        consumer.topics()
        return {(b.host, b.port) for b in consumer._client.cluster.brokers()}
    finally:
        consumer.close()


def send_must_fail(bootstrap: str, security: KafkaSecurity) -> None:
    """A producer with these options gets nothing into the topic."""
    with pytest.raises(KafkaError):
        producer = make_producer(bootstrap, security=security, bootstrap_timeout_ms=3000)
        try:
            producer.send(TOPIC, b"must not arrive").get(timeout=5)
        finally:
            producer.close(timeout=1)


def logged(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.msg == name]


def kafka_python_said(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.name.startswith("kafka."))


# -------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_the_hubs_clients_authenticate_with_scram(
    sasl: Sasl, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    security = sasl.security(mechanism)
    # The kafka logger by name: a command run earlier in this process may have held it at
    # WARNING (hub.logs.QUIET_LOGGERS), which the root level alone would not lift.
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="kafka"):
        ensure_topics(sasl.front.address, {TOPIC: 2}, security=security)
        producer = make_producer(sasl.front.address, security=security)
        try:
            producer.send(TOPIC, key=b"person-1", value=b"referral requested").get(timeout=10)
        finally:
            producer.close(timeout=5)
        consumer = make_consumer(
            sasl.front.address, group_id="sasl-check", topics=[TOPIC], security=security
        )
        try:
            got = _poll_values(consumer, timeout=30)
        finally:
            consumer.close()
    assert got == [b"referral requested"]
    counts = sasl.front.counts
    # admin, producer and consumer each bootstrap and then connect to the broker it names.
    assert counts.authenticated >= 4
    assert set(counts.users) == {USER}
    assert counts.failed == counts.unsupported_mechanism == counts.unauthenticated == 0
    # kafka-python checked the front's server signature (SCRAM's server-final message).
    assert f"Authenticated as {USER} via SASL / {mechanism}" in kafka_python_said(caplog)
    assert advertised(sasl.front.address, security) == {("127.0.0.1", sasl.front.port)}


def _poll_values(consumer: KafkaConsumer, timeout: float) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values = [r.value for r in records]
            if values:
                return values
    return []


@pytest.mark.parametrize("user, password", [(USER, "wrong-password"), ("hub-nobody", PASSWORD)])
def test_a_wrong_password_or_unknown_user_is_refused(
    sasl: Sasl, user: str, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_topics(sasl.front.address, {TOPIC: 1}, security=sasl.security())
    before = sasl.front.counts.authenticated
    wrong = sasl.security(password=password, kafka_sasl_username=user)
    with caplog.at_level(logging.WARNING), caplog.at_level(logging.WARNING, logger="kafka"):
        send_must_fail(sasl.front.address, wrong)
    assert sasl.front.counts.authenticated == before
    assert sasl.front.counts.failed >= 1
    [failed, *_] = logged(caplog, "sasl_front.authentication_failed")
    assert failed.user == user  # type: ignore[attr-defined]
    # The client was told why (error 58 and Kafka's message), not merely hung up on.
    said = kafka_python_said(caplog)
    assert "SaslAuthenticationFailedError" in said
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in said
    everything = " ".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in everything and password not in everything
    assert produced(sasl.front.address, sasl.security(), TOPIC) == 0


def test_a_mechanism_the_broker_does_not_offer_is_refused(
    sasl: Sasl, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_topics(sasl.front.address, {TOPIC: 1}, security=sasl.security())
    before = sasl.front.counts.authenticated
    with caplog.at_level(logging.WARNING), caplog.at_level(logging.WARNING, logger="kafka"):
        send_must_fail(sasl.front.address, sasl.security("PLAIN"))
    assert sasl.front.counts.unsupported_mechanism >= 1
    assert sasl.front.counts.authenticated == before
    [refused, *_] = logged(caplog, "sasl_front.mechanism_refused")
    assert refused.mechanism == "PLAIN"  # type: ignore[attr-defined]
    assert "UnsupportedSaslMechanismError" in kafka_python_said(caplog)
    assert produced(sasl.front.address, sasl.security(), TOPIC) == 0


def test_a_client_without_sasl_gets_no_further_than_api_versions(sasl: Sasl) -> None:
    # The health probe asks ApiVersions only, which a SASL listener answers before SASL.
    assert broker_state(sasl.front.address, timeout=1.0) == "answers"
    assert sasl.front.counts.unauthenticated == 0
    ensure_topics(sasl.front.address, {TOPIC: 1}, security=sasl.security())
    send_must_fail(sasl.front.address, PLAINTEXT)
    assert sasl.front.counts.unauthenticated >= 1  # its Metadata request closed the connection
    assert produced(sasl.front.address, sasl.security(), TOPIC) == 0


def test_a_referral_reaches_the_partner_through_sasl_only(
    sasl: Sasl, database_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD)
    hub, partners = make_hub(
        database_url,
        tmp_path,
        kafka_bootstrap_servers=sasl.front.address,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER,
        kafka_sasl_password_file=secret,
    )
    referral_reaches_amt_inbox(hub, partners)
    counts = sasl.front.counts
    assert counts.authenticated >= 5  # admin, epoch, relay, router and inbox connections

    def all_accounted() -> bool:
        """every connection the front accepted has ended or authenticated"""
        return counts.authenticated + counts.left_unauthenticated == counts.accepted

    # The rest are the epochs' watched connections and health probes: nothing of theirs but
    # ApiVersions reached the broker.
    wait_for(all_accounted, timeout=5)
    assert counts.failed == counts.unsupported_mechanism == counts.unauthenticated == 0
    assert advertised(sasl.front.address, hub.kafka_security) == {("127.0.0.1", sasl.front.port)}


@pytest.mark.skipif(shutil.which("stunnel4") is None, reason="stunnel4 not installed")
def test_sasl_ssl_through_tls_then_scram(tmp_path: Path) -> None:
    """SASL_SSL: stunnel terminates TLS, the SCRAM front authenticates, the broker serves."""
    ca = Authority(tmp_path, "hub")
    tls_port, front_port = free_port(), free_port()
    with (
        EmbeddedBroker(log_path=tmp_path / "broker.log", advertised=f"127.0.0.1:{tls_port}") as b,
        SaslFront(port=front_port, backend=b.port) as front,
    ):
        front.add_user(USER, PASSWORD)
        stunnel = Stunnel(
            tmp_path,
            port=tls_port,
            backend=front_port,
            server=ca.issue("broker", names=["127.0.0.1"]),
        )
        try:
            sasl = Sasl(broker=b, front=front, directory=tmp_path)
            security = sasl.security(
                kafka_bootstrap_servers=stunnel.address,
                kafka_security_protocol="SASL_SSL",
                kafka_ssl_cafile=ca.cafile,
            )
            assert security.tls and security.sasl
            ensure_topics(stunnel.address, {TOPIC: 1}, security=security)
            producer = make_producer(stunnel.address, security=security)
            try:
                producer.send(TOPIC, b"over TLS, after SCRAM").get(timeout=10)
            finally:
                producer.close(timeout=5)
            assert produced(stunnel.address, security, TOPIC) == 1
            assert advertised(stunnel.address, security) == {("127.0.0.1", tls_port)}
            # Every connection the front saw came through stunnel and authenticated.
            assert stunnel.accepted() >= front.counts.accepted >= 4
            assert front.counts.authenticated == front.counts.accepted
            wrong = sasl.security(
                password="wrong-password",
                kafka_bootstrap_servers=stunnel.address,
                kafka_security_protocol="SASL_SSL",
                kafka_ssl_cafile=ca.cafile,
            )
            send_must_fail(stunnel.address, wrong)
            assert front.counts.failed >= 1
            assert produced(stunnel.address, security, TOPIC) == 1
        finally:
            stunnel.close()
