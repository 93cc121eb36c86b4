"""One referral is one trace, across HTTP, the outbox, Kafka, consumers and the partner call;
the hub's metrics carry plausible values after a short run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hub import gauges, telemetry
from tests.hubtest import api_client, data_points
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims

pytestmark = pytest.mark.integration

RECOGNITION = {
    "type": "recognition.assessment",
    "performer": "ihk-fosa",
    "person": {"given_name": "Arjun", "family_name": "Sharma", "birth_date": "1994-07-12"},
    "payload": {"reference_occupation": "Elektroniker/in"},
}


@pytest.fixture
def traced(running: Running) -> Iterator[tuple[Running, InMemorySpanExporter, Any, Sim]]:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry.configure(
        running.hub.settings,
        service="test",
        span_processors=[SimpleSpanProcessor(spans)],
        metric_readers=[reader],
    )
    gauges.register(running.hub.session_factory)
    try:
        sims = start_sims(running, ["ihk-fosa"])
        running.start_relay()
        for name in ("router", "timeline"):
            running.start_consumer_thread(name)
        start_delivery(running)
        yield running, spans, reader, sims["ihk-fosa"]
        sims["ihk-fosa"].server.stop()
    finally:
        running.close()
        telemetry.reset()


def delivered(sim: Sim, referral_id: str) -> bool:
    """the chamber's simulator received the referral"""
    return any(d.referral_id == referral_id for d in sim.received().values())


def test_one_referral_is_one_trace_across_kafka_and_metrics_follow(
    traced: tuple[Running, InMemorySpanExporter, Any, Sim],
) -> None:
    running, exporter, reader, sim = traced
    with api_client(running.hub) as client:
        r = client.post(
            "/v1/referrals", json=RECOGNITION, headers=running.partners.headers(client, "amt")
        )
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        wait_for(lambda: delivered(sim, rid), timeout=60)
        httpx.post(f"{sim.server.url}/_sim/mode", json={"mode": "reject400"})
        refused = client.post(
            "/v1/referrals", json=RECOGNITION, headers=running.partners.headers(client, "amt")
        )
        assert refused.status_code == 202

    server = next(
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER and s.name == "POST /v1/referrals"
    )
    trace_id = server.context.trace_id

    def hops() -> list[ReadableSpan]:
        """the partner call and the events topic's consumer have ended in the referral's trace"""
        mine = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        calls = [s for s in mine if s.kind == SpanKind.CLIENT and "webhook" in _url(s)]
        # The delivery does not wait for the timeline consumer, which may join its group later.
        read = [
            s for s in mine if s.kind == SpanKind.CONSUMER and s.name == "process hub.events.v1"
        ]
        return mine if calls and read else []

    trace = wait_for(hops, timeout=30)
    names = {(s.kind, s.name) for s in trace}
    deliveries = running.hub.settings.deliveries_topic("ihk-fosa")
    for expected in [
        (SpanKind.INTERNAL, "outbox write hub.events.v1"),
        (SpanKind.PRODUCER, "send hub.events.v1"),
        (SpanKind.CONSUMER, "process hub.events.v1"),
        (SpanKind.INTERNAL, f"outbox write {deliveries}"),
        (SpanKind.PRODUCER, f"send {deliveries}"),
        (SpanKind.CONSUMER, f"process {deliveries}"),
    ]:
        assert expected in names, sorted(n for _, n in names)
    assert any(s.kind == SpanKind.CLIENT and s.attributes.get("db.system") for s in trace)
    by_id = {s.context.span_id: s for s in trace}
    for consumer in (s for s in trace if s.kind == SpanKind.CONSUMER):
        parent = by_id[consumer.parent.span_id]  # type: ignore[union-attr]
        assert parent.kind == SpanKind.PRODUCER, "linked across Kafka through traceparent"
        assert (
            parent.attributes["messaging.destination.name"]
            == consumer.attributes["messaging.destination.name"]
        )
        assert "messaging.destination.partition.id" in parent.attributes
    _assert_conventions(running, trace)
    # Routed at acceptance: the performer's copy is written in the request, with the event.
    written = next(s for s in trace if s.name == "outbox write hub.events.v1")
    routed = next(s for s in trace if s.name == f"outbox write {deliveries}")
    assert routed.parent.span_id == written.parent.span_id  # type: ignore[union-attr]

    def settled() -> dict[str, Any]:
        """the refused delivery was dead-lettered and the outbox is empty"""
        points = _points(reader)
        done = points.get("hub.deadletters", 0) >= 1 and points.get("hub.outbox.backlog") == 0
        return points if done and "hub.consumer.lag" in points else {}

    points = wait_for(settled, timeout=60)
    assert points["hub.referrals.accepted"] == 2
    assert points["hub.outbox.published"] >= 4  # two events and two routed copies
    assert points["hub.consumer.processed"] >= 4
    assert points["hub.delivery.latency.count"] == 1
    assert points["hub.delivery.latency.buckets"] == telemetry.LATENCY_BUCKETS
    assert 0 < points["hub.delivery.latency.sum"] < 60
    assert points["hub.partners.paused"] == 0
    assert points["hub.outbox.oldest_age"] == 0
    # The refused copy was dead-lettered, not applied: it stays owed until a replay is.
    assert points["hub.outbox.unsettled_age"] > 0
    # No sequencer runs here, so the calls above wait for a checkpoint: what an alert watches.
    assert points["hub.audit.unsequenced_age"] > 0
    assert points["hub.consumer.lag"] >= 0  # measured per group and partition
    # The gateway's own duration metric, in seconds, by route template (no ids in it).
    assert points["http.server.request.duration.count"] >= 2
    assert points["http.server.request.duration.buckets"] == telemetry.LATENCY_BUCKETS
    routes = {
        dict(p.attributes or {}).get("http.route")
        for p in data_points(reader, "http.server.request.duration")
    }
    assert "/v1/referrals" in routes and not any("-" in str(r) for r in routes), routes


def _assert_conventions(running: Running, trace: list[ReadableSpan]) -> None:
    """Stable HTTP and current messaging names; no pseudonym or query string in a span."""
    from sqlalchemy import select

    from hub.outbox.models import OutboxEvent

    with running.hub.session_factory() as session:
        keys = {k for k in session.scalars(select(OutboxEvent.key)) if k}
    assert keys, "the referral's rows carry the person pseudonym as key"
    groups = {"hub.router", "hub.timeline", "hub.delivery.ihk-fosa"}
    for s in trace:
        attrs = dict(s.attributes or {})
        assert "http.method" not in attrs and "http.url" not in attrs, s.name
        assert "messaging.kafka.message.key" not in attrs, s.name
        for name, value in attrs.items():
            assert not any(k in str(value) for k in keys), f"{s.name}: {name} holds a pseudonym"
            if name != "url.query":  # the Collector deletes url.query (otel-collector.yaml)
                assert "?" not in str(value) or not name.startswith("url."), (s.name, name)
        if s.kind == SpanKind.PRODUCER:
            assert attrs["messaging.operation.name"] == attrs["messaging.operation.type"]
            assert s.name.startswith("send ") and attrs["messaging.operation.type"] == "send"
        if s.kind == SpanKind.CONSUMER:
            assert attrs["messaging.operation.name"] == "process", s.name
            assert attrs["messaging.consumer.group.name"] in groups, attrs
    server = next(s for s in trace if s.kind == SpanKind.SERVER)
    assert server.attributes["http.request.method"] == "POST"  # type: ignore[index]
    assert server.attributes["http.route"] == "/v1/referrals"  # type: ignore[index]


def _url(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    return str(attrs.get("url.full") or attrs.get("http.url") or "")


def _points(reader: InMemoryMetricReader) -> dict[str, Any]:
    """Metric name -> summed value (histograms: .count and .sum)."""
    found: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    if hasattr(point, "bucket_counts"):
                        found[f"{metric.name}.buckets"] = tuple(point.explicit_bounds)
                        found[f"{metric.name}.count"] = found.get(f"{metric.name}.count", 0) + (
                            point.count
                        )
                        found[f"{metric.name}.sum"] = found.get(f"{metric.name}.sum", 0) + (
                            point.sum
                        )
                    else:
                        found[metric.name] = found.get(metric.name, 0) + point.value
    return found
