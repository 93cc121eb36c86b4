"""The hub's consumers: which handler reads which topics, and how a runner is built."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from connectors.config import ConnectorConfig, resolve_secret
from connectors.egress import EgressPolicy
from connectors.http import HttpDeliverer
from connectors.registry import connector_for
from consumers import deadlines, inbox, router, timeline
from consumers.delivery import DeliveryRunner
from consumers.runner import ConsumerRunner, Handler, until_database_answers
from hub.bootstrap import Hub
from hub.kafka.client import consumer_group, make_consumer, make_producer
from hub.partners.service import partner_ids, push_partners
from hub.settings import Settings

log = logging.getLogger(__name__)

NAMES = ("router", "timeline", "inbox", "deadlines")
#: The consumers no partner's referral or status change waits for on its way to a partner:
#: the router (those are routed in the transaction that accepts them; the router routes what
#: the hub makes itself, closings and erasures) and the two that keep staff views. They take
#: their own fetch wait (``kafka_background_fetch_max_wait_ms``), which may be longer.
BACKGROUND = frozenset({"router", "timeline", "deadlines"})


def fetch_wait_ms(name: str, settings: Settings) -> int:
    """How long consumer ``name``'s fetches wait at the broker."""
    if name in BACKGROUND:
        return settings.kafka_background_fetch_max_wait_ms
    return settings.kafka_fetch_max_wait_ms


def _topics(name: str, hub: Hub) -> Callable[[], list[str]]:
    if name != "inbox":
        return lambda: [hub.settings.topic_events]

    def delivery_topics() -> list[str]:
        with hub.session_factory() as session:
            return [hub.settings.deliveries_topic(p) for p in partner_ids(session, mode="pull")]

    return delivery_topics


def _handler(name: str) -> Handler:
    handlers: dict[str, Handler] = {
        "router": router.handle,
        "timeline": timeline.handle,
        "inbox": inbox.handle,
        "deadlines": deadlines.handle,
    }
    return handlers[name]


def consumer_factory(name: str, hub: Hub) -> Callable[[list[str], Any], Any]:
    """What makes the Kafka consumer of one of ``NAMES``, in consumer group ``hub.<name>``."""
    settings = hub.settings

    def make(topics: list[str], listener: Any = None) -> Any:
        return make_consumer(
            hub.bootstrap_servers,
            group_id=consumer_group(settings, name),
            topics=topics,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_max_wait_ms=fetch_wait_ms(name, settings),
            max_poll_records=settings.kafka_max_poll_records,
            client_id=f"{settings.kafka_client_id}.{name}",
            listener=listener,
            security=hub.kafka_security,
        )

    return make


def build_runner(name: str, hub: Hub) -> ConsumerRunner:
    """A runner for one of ``NAMES``, in consumer group ``hub.<name>``."""
    settings = hub.settings
    return ConsumerRunner(
        name=name,
        handler=_handler(name),
        mark_as=inbox.mark_as if name == "inbox" else None,
        wants=router.wants if name == "router" else None,
        prepare=deadlines.prepare if name == "deadlines" else None,
        topics=_topics(name, hub),
        session_factory=hub.session_factory,
        settings=settings,
        catalogue=hub.catalogue,
        policy=hub.policy,
        consumer_factory=consumer_factory(name, hub),
        producer_factory=lambda: make_producer(
            hub.bootstrap_servers,
            client_id=f"{settings.kafka_client_id}.{name}",
            security=hub.kafka_security,
        ),
    )


def build_delivery_runners(hub: Hub) -> list[DeliveryRunner]:
    """One push-delivery runner per partner in push mode, in group ``hub.delivery.<partner>``.

    A partner whose stored settings could never deliver (stored before they were checked, or
    edited by hand) gets no runner and an error in the log: its deliveries wait on its topic,
    nothing is lost, until ``hub partners connect`` fixes them and the process restarts. The
    other partners are not held up by it.
    """
    with hub.session_factory() as session:
        stored = [(p.id, p.kind, p.connector) for p in push_partners(session)]
    runners = []
    for pid, kind, connector in stored:
        try:
            config = ConnectorConfig.model_validate(connector)
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]) for e in exc.errors())
            log.error("delivery.partner_not_started", extra={"partner": pid, "error": problems})
            continue
        runners.append(_delivery_runner(hub, pid, kind, config))
    return runners


def delivery_runners_when_ready(hub: Hub, stop: threading.Event) -> list[DeliveryRunner]:
    """``build_delivery_runners``, waiting for the database if it is away at start-up."""
    built: list[DeliveryRunner] = []

    def build() -> None:
        built[:] = build_delivery_runners(hub)

    until_database_answers(stop, build, name="delivery")
    return built


def _delivery_runner(
    hub: Hub, partner_id: str, kind: str, config: ConnectorConfig
) -> DeliveryRunner:
    settings = hub.settings
    allow_values = settings.profile == "development"
    deliverer = HttpDeliverer(
        endpoint_url=config.endpoint_url or "",
        token_endpoint=config.token_endpoint or "",
        client_id=config.client_id or "",
        client_secret=resolve_secret(config.credential_ref, allow_values=allow_values) or "",
        signing_secret=config.signing_secrets(allow_values=allow_values) or "",
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_response_bytes=config.max_response_bytes,
        egress=EgressPolicy.for_profile(settings.profile),
    )

    def consumer_factory(topics: list[str], listener: Any = None) -> Any:
        return make_consumer(
            hub.bootstrap_servers,
            group_id=consumer_group(settings, f"delivery.{partner_id}"),
            topics=topics,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            max_poll_records=settings.kafka_max_poll_records,
            client_id=f"{settings.kafka_client_id}.delivery.{partner_id}",
            listener=listener,
            security=hub.kafka_security,
        )

    return DeliveryRunner(
        partner_id=partner_id,
        connector=connector_for(kind),
        deliverer=deliverer,
        session_factory=hub.session_factory,
        settings=settings,
        consumer_factory=consumer_factory,
        producer_factory=lambda: make_producer(
            hub.bootstrap_servers,
            client_id=f"{settings.kafka_client_id}.delivery",
            security=hub.kafka_security,
        ),
        policy=hub.policy,
    )
