"""Which broker the hub is talking to: the id the broker gave the hub's epoch topic.

Kafka gives every topic a random id when it is created (KIP-516) and keeps it as long as the
topic lives. A broker that forgot its topics (the embedded in-memory broker after a restart),
or another cluster behind the same address, gives the epoch topic a new id when the hub
creates it again. The relay compares it with the one the database recorded
(hub.outbox.settlement) before every batch, so it sends nothing to a new broker before it
has queued again what the old one may have lost.

Asking costs a metadata request (about a millisecond and a half on loopback), so the answer
is kept while a plain TCP connection to the bootstrap broker, opened right after it, stays
open: a broker process that ends, however it ends, closes it, and the next check asks
again. A connection that cannot be watched (closed by the broker when idle, refused) means
asking; so does an answer older than ``KEEP_SECONDS``, in case a broker vanished without
closing anything (a lost host: Apache Kafka keeps topic ids, so this never changes there).
With TLS the watched connection is a TLS connection made with the clients' own context (a
TLS proxy in front of the broker closes it when the broker's side closes); it never
authenticates, which brokers tolerate until their idle limit, and then it is asked again.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import time
from typing import Any

from kafka.admin import KafkaAdminClient

from hub.kafka.client import ensure_topics
from hub.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

_UNKNOWN_TOPIC = 3
_NO_ID = {None, "", "AAAAAAAAAAAAAAAAAAAAAA", "00000000-0000-0000-0000-000000000000"}
#: What a broker that gives topics no ids (Kafka before 2.8) is known by: it never changes,
#: so the relay never re-publishes; such a broker is expected to keep its log.
UNIDENTIFIED = "unidentified"
#: The longest a kept answer is trusted without asking the broker again.
KEEP_SECONDS = 30.0


class BrokerEpoch:
    """Asks the broker for the epoch topic's id, creating the topic when it is missing."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        timeout: float = 5.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._security = security
        self._topic = topic
        self._timeout = timeout
        self._admin: KafkaAdminClient | None = None
        self._kept: str | None = None
        self._kept_at = 0.0
        self._watch: socket.socket | None = None

    def __call__(self) -> str:
        """The broker's current epoch; raises when it does not answer."""
        if self._kept is not None:
            if self._still_same_broker():
                return self._kept
            # The broker went away (or the answer is old): the admin client's connection is
            # as stale as the watched one, so ask with a fresh client.
            self.close()
        try:
            topic_id = self._topic_id()
            if topic_id is None:
                ensure_topics(
                    self._bootstrap,
                    {self._topic: 1},
                    timeout=self._timeout,
                    security=self._security,
                )
                topic_id = self._topic_id()
        except Exception:
            self.close()  # a client that met a dead or restarted broker starts afresh
            raise
        if topic_id is None:
            raise RuntimeError(f"the broker did not create the epoch topic {self._topic}")
        self._keep(topic_id)
        return topic_id

    def _keep(self, topic_id: str) -> None:
        host, _, port = self._bootstrap.split(",")[0].strip().rpartition(":")
        try:
            address = (host.strip("[]") or "localhost", int(port))
            raw = socket.create_connection(address, timeout=1.0)
        except (OSError, ValueError):
            return  # nothing to watch: ask every time
        try:
            self._watch = self._security.wrap(raw, address[0])
        except OSError:
            raw.close()
            return
        self._watch.setblocking(False)
        self._kept, self._kept_at = topic_id, time.monotonic()

    def _still_same_broker(self) -> bool:
        """True while the watched connection is open and the answer is young enough."""
        if self._watch is None or time.monotonic() - self._kept_at > KEEP_SECONDS:
            return False
        try:
            readable, _, _ = select.select([self._watch], [], [], 0)
            if not readable:
                return True
            if isinstance(self._watch, ssl.SSLSocket):
                # TLS records that carry no data (a TLS 1.3 session ticket) make it readable
                # too; reading consumes them and only an end of stream reads as b"".
                return self._watch.recv(1) != b""
            # The broker never writes to a connection that sent nothing: readable means it
            # was closed (end of stream) or reset.
            return self._watch.recv(1, socket.MSG_PEEK) != b""
        except ssl.SSLWantReadError:
            return True
        except OSError:
            return False

    def _forget(self) -> None:
        self._kept = None
        if self._watch is not None:
            watch, self._watch = self._watch, None
            watch.close()

    def close(self) -> None:
        """Drop the admin client and the kept answer (both are made again on the next call)."""
        self._forget()
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                admin.close()
            except Exception as exc:  # closing a client of a dead broker may fail
                log.debug("kafka.epoch_close_failed", extra={"error": repr(exc)})

    def _topic_id(self) -> str | None:
        if self._admin is None:
            self._admin = KafkaAdminClient(
                bootstrap_servers=self._bootstrap,
                client_id="talent-hub-epoch",
                request_timeout_ms=int(self._timeout * 1000),
                **self._security.client_options(),
            )
        described: list[dict[str, Any]] = self._admin.describe_topics([self._topic])
        topic = next((t for t in described if t.get("name") == self._topic), None)
        if topic is None or topic.get("error_code") == _UNKNOWN_TOPIC:
            return None
        if topic.get("error_code"):
            raise RuntimeError(f"describing {self._topic}: error {topic['error_code']}")
        topic_id = topic.get("topic_id")
        return UNIDENTIFIED if topic_id in _NO_ID else str(topic_id)
