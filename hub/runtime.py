"""Running the hub's processes: the relay and consumers as threads, and ``hub up`` as a whole."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hub import migrate
from hub.audit.sequencer import Sequencer
from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.kafka.client import broker_state, ensure_topics, make_producer
from hub.kafka.embedded import EmbeddedBroker, Supervisor
from hub.kafka.epoch import BrokerEpoch
from hub.outbox.relay import Relay
from hub.outbox.settlement import Settler
from hub.partners.service import partner_ids, seed_demo_partners
from hub.settings import Settings

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
#: Where hub up leaves the embedded broker's address for other hub commands.
BROKER_ADDRESS_FILE = "kafka.bootstrap"
#: The relay keeps retrying with one producer (same id, same sequence numbers) for this long
#: while the broker is unreachable; see hub.outbox.relay.
RELAY_DELIVERY_TIMEOUT_MS = 30 * 60 * 1000


def prepare_database(hub: Hub) -> list[dict[str, Any]]:
    """Migrate; on first start register the demo partners and return their credentials."""
    migrate.upgrade(hub.engine)
    if not hub.settings.seed_partners:
        return []
    with unit_of_work(hub.session_factory) as session:
        return seed_demo_partners(session)


def check_policy(hub: Hub) -> None:
    """Refuse to run with a policy that names unregistered partners or contradicts the catalogue."""
    from sqlalchemy import select

    from hub.partners.models import Partner

    with hub.session_factory() as session:
        kinds = dict(session.execute(select(Partner.id, Partner.kind)).tuples().all())
    hub.policy.check_partners(kinds, hub.catalogue)


def record_policy_in_force(hub: Hub) -> None:
    """Check the policy and note in the audit trail which one this process runs with."""
    from hub.audit.service import record

    check_policy(hub)
    p = hub.policy
    with unit_of_work(hub.session_factory) as session:
        record(
            session,
            actor_type="system",
            actor="hub",
            action="policy.loaded",
            details={
                "source": p.source,
                "version": p.version,
                "sha256": p.digest,
                "routes": len(p.rules),
            },
        )


def store_credentials(settings: Settings, creds: list[dict[str, Any]]) -> Path:
    """Write new partner credentials to a file only the owner can read."""
    path = settings.data_dir / CREDENTIALS_FILE
    existing = json.loads(path.read_text()) if path.exists() else []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(existing + creds, f, indent=2)
    return path


def topic_plan(hub: Hub) -> dict[str, int]:
    """Every topic the hub uses now, with its partition count."""
    s = hub.settings
    with hub.session_factory() as session:
        partners = partner_ids(session)
    plan = {s.topic_events: s.events_partitions, s.topic_deadletter: 1}
    plan[s.topic_audit_checkpoints] = 1  # one partition: checkpoints stay in order
    plan.update({s.deliveries_topic(p): s.deliveries_partitions for p in partners})
    plan[s.topic_broker_epoch] = 1
    return plan


def build_relay(hub: Hub) -> Relay:
    """A relay wired to this process's outbox signal."""
    s = hub.settings

    def ensure(topics: set[str]) -> None:
        one = {s.topic_deadletter, s.topic_audit_checkpoints, s.topic_broker_epoch}
        counts = {
            t: s.events_partitions
            if t == s.topic_events
            else 1
            if t in one
            else s.deliveries_partitions
            for t in topics
        }
        ensure_topics(hub.bootstrap_servers, counts, security=hub.kafka_security)

    return Relay(
        session_factory=hub.session_factory,
        producer_factory=lambda: make_producer(
            hub.bootstrap_servers,
            client_id=f"{s.kafka_client_id}.relay",
            delivery_timeout_ms=RELAY_DELIVERY_TIMEOUT_MS,
            security=hub.kafka_security,
        ),
        ensure_topics=ensure,
        broker_state=lambda: broker_state(
            hub.bootstrap_servers, timeout=1.0, security=hub.kafka_security
        ),
        batch_size=s.relay_batch_size,
        poll_interval=s.relay_poll_interval_seconds,
        linger=s.relay_linger_ms / 1000,
        wakeup=hub.outbox_written,
        broker_epoch=BrokerEpoch(
            hub.bootstrap_servers, s.topic_broker_epoch, security=hub.kafka_security
        ),
        settler=Settler(hub.session_factory, s),
        all_topics=lambda: set(topic_plan(hub)),
    )


def start_relay(hub: Hub, stop: threading.Event) -> list[threading.Thread]:
    """The relay thread, plus on PostgreSQL a listener that wakes it on other processes' commits."""
    threads = [start_thread("relay", build_relay(hub).run, stop)]
    if hub.engine.dialect.name == "postgresql":
        from hub.outbox.notify import listen

        url = hub.settings.resolved_database_url
        threads.append(
            start_thread("relay-listen", lambda s: listen(url, hub.outbox_written, s), stop)
        )
    return threads


def build_sequencer(hub: Hub) -> Sequencer:
    """The audit log's sequencer, publishing checkpoints to Kafka and, if set, to a file."""
    s = hub.settings
    return Sequencer(
        session_factory=hub.session_factory,
        origin=s.audit_origin,
        interval=s.audit_checkpoint_seconds,
        topic=s.topic_audit_checkpoints,
        checkpoint_file=s.audit_checkpoint_file,
    )


def start_sequencer(hub: Hub, stop: threading.Event) -> threading.Thread:
    """The sequencer thread; on PostgreSQL any number may run, one leads each batch."""
    return start_thread("audit-sequencer", build_sequencer(hub).run, stop)


def start_deadline_scheduler(hub: Hub, stop: threading.Event) -> threading.Thread:
    """The scheduler that announces deadline warnings and expiries."""
    from hub.deadlines.scheduler import DeadlineScheduler

    s = hub.settings
    scheduler = DeadlineScheduler(
        session_factory=hub.session_factory,
        catalogue=hub.catalogue,
        settings=s,
        interval=s.deadline_scan_interval_seconds,
    )
    return start_thread("deadline-scheduler", scheduler.run, stop)


#: First-generation threshold for server processes (Python's default is 700).
GC_THRESHOLD = 50_000


def tune_gc() -> None:
    """Keep the cyclic garbage collector's pauses short in a long-running server process.

    After start-up the heap holds hundreds of thousands of long-lived objects (modules, the
    ORM's mappings, pydantic's validators); every full collection walked them all, which put
    80 ms pauses into one request in a hundred (docs/performance.md §2). ``gc.freeze`` moves
    them out of the collector's sight, and a larger first-generation threshold makes the
    collections that remain rarer. Reference counting frees almost everything anyway."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


class WorkerStopped(RuntimeError):
    """A worker stopped on purpose and must not be restarted (e.g. a consumer that halted
    because nothing but dead letters came out). Any other exception restarts the worker."""


#: A worker that failed is started again after this long, doubling up to the maximum.
RESTART_SECONDS = (1.0, 30.0)


def start_thread(
    name: str, target: Callable[[threading.Event], None], stop: threading.Event
) -> threading.Thread:
    """Run ``target(stop)`` in a daemon thread until ``stop`` is set.

    A worker that fails (an unexpected error, a dependency gone for longer than it waits) is
    logged and started again after a growing pause, so one fault does not leave the hub
    without its relay or a consumer until someone restarts the process."""

    def body() -> None:
        pause, longest = RESTART_SECONDS
        while not stop.is_set():
            try:
                target(stop)
                return
            except WorkerStopped:
                log.critical("runtime.worker_stopped", extra={"worker": name}, exc_info=True)
                return
            except Exception:
                log.exception("runtime.thread_failed", extra={"worker": name, "restart_in": pause})
            stop.wait(pause)
            pause = min(pause * 2, longest)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


@contextmanager
def kafka_for(settings: Settings) -> Iterator[Settings]:
    """Settings pointing at Kafka: the configured cluster, or an embedded broker for the block."""
    if not settings.embedded_kafka:
        yield settings
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log")
    broker.start()
    # A broker that dies is started again on its port; clients reconnect to the same address.
    supervisor = Supervisor(broker).start()
    log.info("runtime.embedded_broker", extra={"bootstrap": broker.bootstrap_servers})
    address_file = settings.data_dir / BROKER_ADDRESS_FILE
    address_file.write_text(broker.bootstrap_servers)
    try:
        yield settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
    finally:
        address_file.unlink(missing_ok=True)
        supervisor.stop()
        broker.stop()


#: How long a process's worker threads may take, all together, to end once told to stop.
STOP_SECONDS = 3.0


def join_all(threads: list[threading.Thread], within: float = STOP_SECONDS) -> None:
    """Wait for the threads to end, all of them within ``within`` seconds.

    A worker inside a Kafka client that waits for an absent broker does not see its stop
    signal until the client gives up (a consumer's bootstrap waits 30 s); one thread after
    the other, each with a timeout of its own, kept ``hub up`` from ending for a minute.
    Threads still running are left to end with the process (they are daemons)."""
    deadline = time.monotonic() + within
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.0))
    left = [t.name for t in threads if t.is_alive()]
    if left:
        log.warning("runtime.threads_left_running", extra={"threads": ",".join(left)})


def running_kafka(settings: Settings) -> Settings:
    """Settings pointing at Kafka: the configured cluster, or the broker of a running hub up."""
    if not settings.embedded_kafka:
        return settings
    address_file = settings.data_dir / BROKER_ADDRESS_FILE
    if not address_file.exists():
        raise RuntimeError("no Kafka: set HUB_KAFKA_BOOTSTRAP_SERVERS or start hub up first")
    return settings.model_copy(update={"kafka_bootstrap_servers": address_file.read_text()})
