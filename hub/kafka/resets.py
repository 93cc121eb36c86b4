"""Consumers notice partitions that were re-created under them.

A topic deleted and created again under the same name (or a broker that forgot its topics, as
the embedded in-memory broker does when it restarts) starts its partitions again at offset 0.
kafka-python notices the new topic id but keeps the consumer's fetch position, so the first
records of the new partition, below the old position, would never be read. The hub's relay
re-publishes everything it still owes after such a restart, so skipping is a loss.

``PartitionResetGuard`` puts the partitions of a re-created topic back to their beginning.
Re-reading is safe: every consumer records the event ids it applied and skips repeats
(design §13). Two more ways to skip had to be closed:

* between the broker coming back and the consumer noticing the new topic id, the consumer
  may have applied records at its old positions and committed those (high) offsets into the
  new group; a re-join of the group then starts from them. So for ``GRACE_SECONDS`` after a
  re-creation the guard seeks the topic's partitions to their beginning again whenever the
  group hands them out anew (it is the consumer's rebalance listener). Committing offset 0
  at once instead was tried: a synchronous commit during the re-join left the consumers
  stuck outside the group;
* comparing positions with end offsets looked like a second signal but fired on a running
  broker (its end offsets can trail what a fetch already returned), and a needless re-read
  would offer a partner again what it had refused. The guard goes by the topic id only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

log = logging.getLogger(__name__)

#: After a re-creation, partitions handed out anew by the group are read from the start again.
GRACE_SECONDS = 120.0


class PartitionResetGuard(ConsumerRebalanceListener):
    """The consumer's rebalance listener; call ``check(consumer)`` once per poll loop."""

    def __init__(self, name: str, *, grace_seconds: float = GRACE_SECONDS) -> None:
        self._name = name
        self._grace = grace_seconds
        self._topic_ids: dict[str, Any] = {}
        self._recreated_at: dict[str, float] = {}
        self._reassigned: set[TopicPartition] = set()
        self._lock = threading.Lock()

    # ConsumerRebalanceListener: runs on the client's IO loop, so it only takes note.

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:  # kafka-python also calls this, with nothing, before the first join
            log.info("consumer.partitions_revoked", extra=self._partitions(revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        # Until this line a consumer that was started consumes nothing: a member still joining
        # its group shows here (the join takes about half the session timeout).
        log.info("consumer.partitions_assigned", extra=self._partitions(assigned))
        now = time.monotonic()
        with self._lock:
            self._reassigned.update(
                tp
                for tp in assigned
                if now - self._recreated_at.get(tp.topic, -self._grace) < self._grace
            )

    def _partitions(self, tps: Iterable[TopicPartition]) -> dict[str, Any]:
        return {
            "consumer": self._name,
            "partitions": ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)),
        }

    def check(self, consumer: Any) -> list[TopicPartition]:
        """Seek every assigned partition of a re-created topic to its beginning."""
        assigned = set(consumer.assignment())
        cluster = getattr(consumer, "_cluster", None)  # kafka-python's metadata cache
        if not assigned or cluster is None:
            return []
        now = time.monotonic()
        changed: set[str] = set()
        for topic in {tp.topic for tp in assigned}:
            topic_id = cluster.topic_id(topic)
            if topic_id is None:  # not known (yet), or a broker without topic ids
                continue
            known = self._topic_ids.setdefault(topic, topic_id)
            if known != topic_id:
                self._topic_ids[topic] = topic_id
                changed.add(topic)
        with self._lock:
            for topic in changed:
                self._recreated_at[topic] = now
            again, self._reassigned = self._reassigned & assigned, set()
        reset = sorted({tp for tp in assigned if tp.topic in changed} | again)
        if reset:
            consumer.seek_to_beginning(*reset)
            log.warning(
                "consumer.partitions_reset",
                extra={
                    "consumer": self._name,
                    "partitions": [f"{tp.topic}-{tp.partition}" for tp in reset],
                    "why": "topic re-created" if changed else "re-assigned after re-creation",
                },
            )
        return reset
