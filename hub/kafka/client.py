"""Kafka client factories, topic creation and a protocol-level liveness probe."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING, Any, Literal

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, for_code

from hub.kafka.security import PLAINTEXT, KafkaSecurity

if TYPE_CHECKING:
    from hub.settings import Settings

log = logging.getLogger(__name__)

_API_VERSIONS_KEY = 18
_PROBE_CLIENT_ID = b"talent-hub-probe"


BrokerState = Literal["answers", "silent", "gone"]


def probe(
    bootstrap_servers: str, timeout: float = 1.0, *, security: KafkaSecurity = PLAINTEXT
) -> bool:
    """Return True if any bootstrap server answers a Kafka ApiVersions request in time."""
    return broker_state(bootstrap_servers, timeout, security=security) == "answers"


def broker_state(
    bootstrap_servers: str, timeout: float = 1.0, *, security: KafkaSecurity = PLAINTEXT
) -> BrokerState:
    """How the bootstrap servers respond to a Kafka ApiVersions request.

    ``answers``: at least one answered in time. ``gone``: every one refused the connection,
    so no broker process is listening (whatever it had received but not acknowledged died
    with it). ``silent``: anything else, e.g. a frozen broker whose kernel still accepts
    connections, a network that drops packets, or a TLS handshake that failed (logged).

    With TLS the request goes through the clients' own TLS context, so a broker the clients
    would not trust does not answer. SASL is not spoken: brokers answer ApiVersions before
    authentication (KIP-43), and a refused password shows in the clients' own errors.
    """
    deadline = time.monotonic() + timeout
    servers = _split_servers(bootstrap_servers)
    refused = 0
    for server in servers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            if _api_versions_ok(server, remaining, security):
                return "answers"
        except ConnectionRefusedError:
            refused += 1
        except ssl.SSLError as exc:
            log.warning(
                "kafka.tls_refused", extra={"server": f"{server[0]}:{server[1]}", "error": str(exc)}
            )
            continue
        except (OSError, ValueError, struct.error):
            continue
    return "gone" if servers and refused == len(servers) else "silent"


def _split_servers(bootstrap_servers: str) -> list[tuple[str, int]]:
    servers = []
    for item in bootstrap_servers.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


def _api_versions_ok(server: tuple[str, int], timeout: float, security: KafkaSecurity) -> bool:
    correlation_id = int(time.monotonic_ns() & 0x7FFFFFFF)
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(_PROBE_CLIENT_ID))
    body += _PROBE_CLIENT_ID
    deadline = time.monotonic() + timeout
    with (
        socket.create_connection(server, timeout=timeout) as raw,
        security.wrap(raw, server[0]) as sock,
    ):
        sock.sendall(struct.pack(">i", len(body)) + body)
        header = _recv_exact(sock, 8, deadline)
    size, answered_id = struct.unpack(">ii", header)
    return size >= 4 and answered_id == correlation_id


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = b""
    while len(data) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("probe timed out")
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def make_producer(
    bootstrap_servers: str,
    *,
    client_id: str = "talent-hub",
    security: KafkaSecurity = PLAINTEXT,
    **overrides: Any,
) -> KafkaProducer:
    """Build an idempotent, acks=all producer of raw bytes."""
    # Explicit enable_idempotence makes a conflicting override raise instead of silently
    # turning idempotence off (kafka-python 3, KIP-679).
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 2,
        "max_in_flight_requests_per_connection": 5,
        "request_timeout_ms": 5000,
        "max_block_ms": 5000,
        "delivery_timeout_ms": 15000,
        # Topics are created by the hub with their partition counts (ensure_topics), never
        # on the side by a metadata request: a broker's default count would change which
        # partition a person's events go to (and re-trigger consumer group joins).
        "allow_auto_create_topics": False,
        # kafka-python's own metrics (sensors updated on every request, every fetch) are read
        # by nothing: the hub exports its own. They cost a relay's small batch about a tenth
        # of its instructions, an idle consumer about a tenth of its CPU (docs/performance.md).
        "metrics_enabled": False,
        **security.client_options(),
    }
    config.update(overrides)
    producer = KafkaProducer(**config)
    creating_topics(producer, allowed=config["allow_auto_create_topics"])
    return producer


def consumer_group(settings: Settings, name: str) -> str:
    """The Kafka consumer group of the consumer ``name`` (``timeline``, ``delivery.<partner>``)."""
    return f"{settings.kafka_group_prefix}.{name}"


def make_consumer(
    bootstrap_servers: str,
    *,
    group_id: str,
    topics: list[str],
    session_timeout_ms: int = 6000,
    client_id: str = "talent-hub",
    listener: ConsumerRebalanceListener | None = None,
    fetch_max_wait_ms: int = 10,
    max_poll_records: int = 500,
    security: KafkaSecurity = PLAINTEXT,
    **overrides: Any,
) -> KafkaConsumer:
    """Build a manually committing group consumer subscribed to the given topics.

    ``fetch_max_wait_ms`` is the hub's ``kafka_fetch_max_wait_ms``: the embedded broker
    answers a fetch only when that wait runs out, even with records waiting, so it is the
    least a record spends between produce and poll (kafka-python's 500 ms costs each hop
    about 150 ms at the median); a real Kafka answers as soon as a record arrives."""
    # The embedded broker's group join waits about half the session timeout, so keep it short.
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "client_id": client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(1, session_timeout_ms // 3),
        "max_poll_records": max_poll_records,
        "fetch_max_wait_ms": fetch_max_wait_ms,
        # Fresh metadata every 10 s: a re-created topic (new topic id) is noticed soon even
        # when nothing failed (hub.kafka.resets), and so are new partitions.
        "metadata_max_age_ms": 10_000,
        "allow_auto_create_topics": False,  # see make_producer
        "metrics_enabled": False,  # see make_producer
        **security.client_options(),
    }
    config.update(overrides)
    consumer = KafkaConsumer(**config)
    creating_topics(consumer, allowed=config["allow_auto_create_topics"])
    consumer.subscribe(topics=topics, listener=listener)
    return consumer


def creating_topics(client: KafkaConsumer | KafkaProducer, *, allowed: bool) -> None:
    """Whether ``client``'s metadata requests ask the broker to create the topics they name.

    kafka-python 3.0 accepts ``allow_auto_create_topics`` but builds the metadata cache that
    makes those requests without it, so every request asks for creation: a broker that
    obliges (the embedded one always does) creates a missing topic with its own default of
    4 partitions. After the embedded broker restarted, a consumer's or producer's request
    came first, and the topics came back with counts the hub never chose, changed again at
    the next restart, and once left a consumer reading 4 of 6 partitions for good
    (docs/chaos.md, finding 10). So the setting is put where the requests are made; a
    client without that cache (another kafka-python) fails here rather than quietly."""
    cluster = client._cluster if isinstance(client, KafkaConsumer) else client._metadata
    cluster.config["allow_auto_create_topics"] = allowed


def ensure_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    *,
    timeout: float = 15.0,
    replication_factor: int = 1,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create any missing topics with the given partition counts; existing ones are left alone."""
    timeout_ms = int(timeout * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="talent-hub-admin",
        request_timeout_ms=timeout_ms,
        **security.client_options(),
    )
    try:
        existing = set(admin.list_topics())
        missing = {name: n for name, n in topics.items() if name not in existing}
        if missing:
            _create(admin, missing, replication_factor, timeout_ms)
        admin.wait_for_topics(list(topics), timeout_ms=timeout_ms)
    finally:
        admin.close()


def _create(
    admin: KafkaAdminClient, topics: dict[str, int], replication_factor: int, timeout_ms: int
) -> None:
    spec = {
        name: {"num_partitions": n, "replication_factor": replication_factor}
        for name, n in topics.items()
    }
    result = admin.create_topics(spec, timeout_ms=timeout_ms, raise_errors=False)
    for topic in result["topics"]:
        error = for_code(topic["error_code"])
        # Another process may have created it between our list and our create.
        if topic["error_code"] == 0 or error is TopicAlreadyExistsError:
            continue
        raise error(f"creating topic {topic['name']}: {topic.get('error_message')}")
    log.info("kafka.topics_created", extra={"topics": sorted(topics)})
