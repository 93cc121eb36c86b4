"""Which broker the hub is talking to: the id the broker gave the hub's epoch topic.

Kafka gives every topic a random id when it is created (KIP-516) and keeps it as long as the
topic lives. A broker that forgot its topics (the embedded in-memory broker after a restart),
or another cluster behind the same address, gives the epoch topic a new id when the hub
creates it again. The relay compares it with the one the database recorded
(hub.outbox.settlement); it asks before every batch, so it sends nothing to a new broker
before it has queued again what the old one may have lost. One metadata request: about a
millisecond and a half on loopback.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.admin import KafkaAdminClient

from hub.kafka.client import ensure_topics

log = logging.getLogger(__name__)

_UNKNOWN_TOPIC = 3
_NO_ID = {None, "", "AAAAAAAAAAAAAAAAAAAAAA", "00000000-0000-0000-0000-000000000000"}
#: What a broker that gives topics no ids (Kafka before 2.8) is known by: it never changes,
#: so the relay never re-publishes; such a broker is expected to keep its log.
UNIDENTIFIED = "unidentified"


class BrokerEpoch:
    """Asks the broker for the epoch topic's id, creating the topic when it is missing."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout: float = 5.0) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._timeout = timeout
        self._admin: KafkaAdminClient | None = None

    def __call__(self) -> str:
        """The broker's current epoch; raises when it does not answer."""
        try:
            topic_id = self._topic_id()
            if topic_id is None:
                ensure_topics(self._bootstrap, {self._topic: 1}, timeout=self._timeout)
                topic_id = self._topic_id()
        except Exception:
            self.close()  # a client that met a dead or restarted broker starts afresh
            raise
        if topic_id is None:
            raise RuntimeError(f"the broker did not create the epoch topic {self._topic}")
        return topic_id

    def close(self) -> None:
        """Drop the admin client (it is made again on the next call)."""
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
            )
        described: list[dict[str, Any]] = self._admin.describe_topics([self._topic])
        topic = next((t for t in described if t.get("name") == self._topic), None)
        if topic is None or topic.get("error_code") == _UNKNOWN_TOPIC:
            return None
        if topic.get("error_code"):
            raise RuntimeError(f"describing {self._topic}: error {topic['error_code']}")
        topic_id = topic.get("topic_id")
        return UNIDENTIFIED if topic_id in _NO_ID else str(topic_id)
