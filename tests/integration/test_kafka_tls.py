"""The hub's Kafka clients over TLS and mutual TLS, through stunnel in front of the broker.

The embedded broker speaks plain Kafka only, so stunnel terminates TLS in front of it, and the
broker advertises stunnel's address: every connection a client makes after bootstrapping,
following the metadata, goes through TLS as well (checked in the end-to-end test).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub.kafka.client import broker_state, ensure_topics, make_producer
from hub.kafka.embedded import EmbeddedBroker, free_port
from hub.kafka.epoch import BrokerEpoch
from hub.kafka.security import KafkaSecurity
from tests.hubtest import STUDENT_REFERRAL, api_client, make_hub
from tests.integration.conftest import Running, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("stunnel4") is None, reason="stunnel4 not installed"),
]

TOPIC = "tls.check.v1"


# ------------------------------------------------------------------------ certificates


@dataclass
class Issued:
    cert: Path
    key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """A test CA that issues server and client certificates as PEM files."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.certificate = (
            self._builder(subject, self.key.public_key())
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cafile = directory / f"{name}-ca.crt"
        self.cafile.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, label: str, *, names: list[str], client: bool = False) -> Issued:
        """A leaf certificate for these DNS names / IP addresses (server) or a client."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        usage = (
            x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
            if client
            else (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        )
        cert = (
            self._builder(subject, key.public_key())
            .issuer_name(self.certificate.subject)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.directory / f"{label}.crt", self.directory / f"{label}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_key_pem(key))
        issued.key.chmod(0o600)
        return issued


# ------------------------------------------------------------------------------ stunnel


class Stunnel:
    """A foreground stunnel terminating TLS on ``port`` and forwarding to the broker."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int,
        backend: int,
        server: Issued,
        client_ca: Path | None = None,
    ) -> None:
        self.port = port
        self.log = directory / f"stunnel-{port}.log"
        config = directory / f"stunnel-{port}.conf"
        lines = [
            "foreground = yes",
            "pid =",
            "debug = info",
            f"output = {self.log}",
            "[kafka]",
            f"accept = 127.0.0.1:{port}",
            f"connect = 127.0.0.1:{backend}",
            f"cert = {server.cert}",
            f"key = {server.key}",
        ]
        if client_ca is not None:  # mutual TLS: a client certificate from this CA or nothing
            lines += ["verify = 2", f"CAfile = {client_ca}"]
        config.write_text("\n".join(lines) + "\n")
        self._proc = subprocess.Popen(
            ["stunnel4", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                assert self._proc.poll() is None, self.log.read_text() if self.log.exists() else ""
                time.sleep(0.05)
        raise RuntimeError(f"stunnel did not listen on {port}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def accepted(self) -> int:
        """Connections stunnel accepted and forwarded so far (from its log)."""
        return self.log.read_text().count("accepted connection from")

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@dataclass
class Tls:
    """A broker reachable only through stunnel (it advertises stunnel's address)."""

    broker: EmbeddedBroker
    stunnel: Stunnel
    ca: Authority
    directory: Path

    def front(self, server: Issued, client_ca: Path | None = None) -> Stunnel:
        """Another stunnel in front of the same broker (stopped with the fixture)."""
        front = Stunnel(
            self.directory,
            port=free_port(),
            backend=self.broker.port,
            server=server,
            client_ca=client_ca,
        )
        self.extra.append(front)
        return front

    def security(self, **changes: Any) -> KafkaSecurity:
        values: dict[str, Any] = {"protocol": "SSL", "cafile": self.ca.cafile} | changes
        return KafkaSecurity(**values)

    extra: list[Stunnel]


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    ca = Authority(tmp_path, "hub")
    server = ca.issue("broker", names=["localhost", "127.0.0.1"])
    port = free_port()
    with EmbeddedBroker(log_path=tmp_path / "broker.log", advertised=f"127.0.0.1:{port}") as b:
        stunnel = Stunnel(tmp_path, port=port, backend=b.port, server=server)
        t = Tls(broker=b, stunnel=stunnel, ca=ca, directory=tmp_path, extra=[])
        try:
            yield t
        finally:
            for s in [stunnel, *t.extra]:
                s.close()


def reader(bootstrap: str, security: KafkaSecurity) -> KafkaConsumer:
    """A consumer without a group, for looking at the broker."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_options()
    )


def produced(tls: Tls, topic: str) -> int:
    """Records in the topic, counted by a client the TLS port trusts."""
    consumer = reader(tls.stunnel.address, tls.security())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        consumer.close()


def tls_errors(caplog: pytest.LogCaptureFixture) -> str:
    """What the probe logged about refused TLS handshakes."""
    return " ".join(r.error for r in caplog.records if r.msg == "kafka.tls_refused")  # type: ignore[attr-defined]


# -------------------------------------------------------------------------------- tests


def test_plaintext_to_the_tls_port_is_refused_quickly(tls: Tls) -> None:
    started = time.monotonic()
    assert broker_state(tls.stunnel.address, timeout=1.0) != "answers"
    assert time.monotonic() - started < 2.0
    assert broker_state(tls.stunnel.address, timeout=1.0, security=tls.security()) == "answers"


def test_a_broker_certificate_from_another_ca_is_refused(
    tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_topics(tls.stunnel.address, {TOPIC: 1}, security=tls.security())
    stranger = Authority(tls.directory, "stranger")
    wrong = tls.security(cafile=stranger.cafile)
    with caplog.at_level(logging.WARNING, logger="hub.kafka.client"):
        assert broker_state(tls.stunnel.address, timeout=1.0, security=wrong) == "silent"
    assert "CERTIFICATE_VERIFY_FAILED" in tls_errors(caplog)
    with pytest.raises(KafkaError):
        producer = make_producer(tls.stunnel.address, security=wrong, bootstrap_timeout_ms=3000)
        try:
            producer.send(TOPIC, b"must not arrive").get(timeout=5)
        finally:
            producer.close(timeout=1)
    assert produced(tls, TOPIC) == 0


def test_the_broker_certificate_must_name_the_host(
    tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tls.front(tls.ca.issue("elsewhere", names=["kafka.elsewhere.example"]))
    with caplog.at_level(logging.WARNING, logger="hub.kafka.client"):
        assert broker_state(elsewhere.address, timeout=1.0, security=tls.security()) == "silent"
    assert "CERTIFICATE_VERIFY_FAILED" in tls_errors(caplog)
    assert "IP address mismatch" in tls_errors(caplog)
    unchecked = tls.security(check_hostname=False)
    assert broker_state(elsewhere.address, timeout=1.0, security=unchecked) == "answers"


def test_mutual_tls_needs_the_client_certificate(tls: Tls) -> None:
    strict = tls.front(tls.ca.issue("strict", names=["127.0.0.1"]), client_ca=tls.ca.cafile)
    user = tls.ca.issue("hub-relay", names=["hub-relay"], client=True)
    anonymous = tls.security()
    assert broker_state(strict.address, timeout=1.0, security=anonymous) != "answers"
    assert "Peer certificate required" in strict.log.read_text()
    mutual = tls.security(certfile=user.cert, keyfile=user.key)
    assert broker_state(strict.address, timeout=1.0, security=mutual) == "answers"
    # A whole client too: the admin client creates a topic through the mutual-TLS port.
    ensure_topics(strict.address, {"mtls.check.v1": 1}, security=mutual)
    assert "mtls.check.v1" in _topics(tls)


def _topics(tls: Tls) -> set[str]:
    consumer = reader(tls.stunnel.address, tls.security())
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def test_a_referral_reaches_the_partner_through_tls_only(
    tls: Tls, database_url: str, tmp_path: Path
) -> None:
    hub, partners = make_hub(
        database_url,
        tmp_path,
        kafka_bootstrap_servers=tls.stunnel.address,
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=tls.ca.cafile,
    )
    referral_reaches_amt_inbox(hub, partners)
    # Every client followed the metadata to stunnel: the broker names no other address.
    consumer = reader(tls.stunnel.address, hub.kafka_security)
    try:
        consumer.topics()
        brokers = {(b.host, b.port) for b in consumer._client.cluster.brokers()}
    finally:
        consumer.close()
    assert brokers == {("127.0.0.1", tls.stunnel.port)}
    assert tls.stunnel.accepted() >= 4  # relay, router, inbox, epoch and admin connections


def referral_reaches_amt_inbox(hub: Any, partners: Any) -> None:
    """ude refers a student to amt through the hub's own Kafka clients as configured: topics,
    the broker epoch (asked, then kept), relay, router and inbox consumer."""
    from hub.runtime import topic_plan

    ensure_topics(hub.bootstrap_servers, topic_plan(hub), security=hub.kafka_security)
    epoch = BrokerEpoch(hub.bootstrap_servers, "hub.epoch.v1", security=hub.kafka_security)
    first = epoch()
    assert epoch() == first  # kept while the watched connection stays open
    running = Running(hub, partners, env={})
    try:
        running.start_relay()
        for name in ("router", "inbox"):
            running.start_consumer_thread(name)
        with api_client(hub) as client:
            ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
            created = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()

            def amt_inbox() -> list[dict[str, Any]]:
                """amt's inbox holds the referral"""
                items = client.get("/v1/inbox", headers=amt).json()["items"]
                return [i for i in items if i["referral_id"] == created["id"]]

            [item] = wait_for(amt_inbox)
            assert item["data"]["person"]["family_name"] == "Li"
    finally:
        running.close()
        epoch.close()
