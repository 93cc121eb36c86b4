"""Building the hub's parts from settings: the one place where wiring happens."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from hub import models, telemetry
from hub.crypto import blind
from hub.crypto.fields import MASTER_KEYS
from hub.crypto.keystore import master_keys_from
from hub.db import make_engine, make_session_factory
from hub.kafka.security import PLAINTEXT, KafkaSecurity
from hub.outbox.notify import MIN_NOTIFY_SPACING, Notifier
from hub.outbox.service import NOTIFY_CHANNEL
from hub.policy.model import Policy, load_policy
from hub.settings import Settings
from schemas.catalogue import Catalogue, load_catalogue


@dataclass
class Hub:
    """The wired parts of one process."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    catalogue: Catalogue
    policy: Policy
    outbox_written: threading.Event = field(default_factory=threading.Event)
    kafka_security: KafkaSecurity = PLAINTEXT

    @property
    def bootstrap_servers(self) -> str:
        """Kafka's bootstrap servers; set once the broker is known."""
        if not self.settings.kafka_bootstrap_servers:
            raise RuntimeError("Kafka bootstrap servers are not known yet")
        return self.settings.kafka_bootstrap_servers


def bootstrap(settings: Settings) -> Hub:
    """Engine, sessions and catalogue; committed outbox writes wake this process's relay."""
    assert models.metadata.tables  # every mapper registered before the first query
    engine = make_engine(settings.resolved_database_url)
    telemetry.instrument_engine(engine)
    # Every session carries the master keys, so services can seal and open personal fields.
    # The holder for the search index key is shared by the sessions (a shallow copy each).
    factory = make_session_factory(
        engine, info={MASTER_KEYS: master_keys_from(settings), blind.PROCESS_CACHE: {}}
    )
    catalogue = load_catalogue()
    policy = load_policy(catalogue, settings.policy_file)
    hub = Hub(
        settings=settings,
        engine=engine,
        session_factory=factory,
        catalogue=catalogue,
        policy=policy,
        kafka_security=KafkaSecurity.from_settings(settings),
    )

    notifier = None
    if engine.dialect.name == "postgresql":
        # No more often than the relay starts batches under load: a wake-up sooner is one
        # more transaction in this process and in PostgreSQL that the relay waits out anyway.
        spacing = max(settings.relay_linger_ms / 1000, MIN_NOTIFY_SPACING)
        notifier = Notifier(settings.resolved_database_url, NOTIFY_CHANNEL, spacing=spacing)

    def after_commit(session: Session) -> None:
        if session.info.pop("outbox_written", False):
            hub.outbox_written.set()  # a relay in this process
            if notifier is not None:
                notifier.wake()  # relays in others

    def after_rollback(session: Session) -> None:
        session.info.pop("outbox_written", None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda s, _t: after_rollback(s))
    return hub


def kafka_probe(hub: Hub) -> Any:
    """A callable telling whether Kafka answers right now."""
    from hub.kafka.client import probe

    return lambda: probe(hub.bootstrap_servers, timeout=1.0, security=hub.kafka_security)
