"""OpenTelemetry for every hub process: traces across HTTP and Kafka, and the hub's metrics.

One referral is one trace: the gateway's HTTP span is the parent of the outbox write; the
outbox row keeps that context (a W3C ``traceparent``), so the relay's publish span continues
it even though it runs later, in another thread or process; the Kafka record carries the
publish span's ``traceparent``; each consumer continues from it, and whatever the consumer
writes to the outbox (routed copies, deadline notices) or sends to a partner over HTTP joins
the same trace.

Exporters are chosen by settings: OTLP over HTTP when ``HUB_OTEL_EXPORTER_OTLP_ENDPOINT`` is
set (traces and metrics, e.g. to an OpenTelemetry Collector); metrics also for Prometheus
scraping on ``HUB_METRICS_PORT`` (each process its own port, never on the partner-facing
gateway port). With neither, spans are not recorded (the no-op tracer) and metrics stay in
memory, so the embedded default costs next to nothing.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeterProvider, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NoOpTracerProvider, Span, SpanKind, Tracer
from sqlalchemy import Engine, event

from hub.settings import Settings

SCOPE = "talent-hub"
TRACEPARENT = "traceparent"
_lock = threading.Lock()
_tracer_provider: trace.TracerProvider = NoOpTracerProvider()
_meter_provider: Any = NoOpMeterProvider()
_measured = False
_instruments: Instruments | None = None
#: Engines made in this process, to be instrumented when spans come to be recorded.
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()

#: Histogram buckets in seconds for every duration the hub records: a partner answers in tens
#: of milliseconds to tens of seconds; the SDK's defaults (0 … 10000) put everything in le=5.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENCY_HISTOGRAMS = ("hub.delivery.latency", "http.server.request.duration")


class Instruments:
    """The hub's synchronous metric instruments (observable ones are registered per process)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.referrals_accepted = meter.create_counter(
            "hub.referrals.accepted", unit="{referral}", description="Referrals accepted (202)."
        )
        self.events_published = meter.create_counter(
            "hub.outbox.published", unit="{event}", description="Outbox rows published to Kafka."
        )
        self.events_consumed = meter.create_counter(
            "hub.consumer.processed", unit="{event}", description="Records applied by consumers."
        )
        self.delivery_latency = meter.create_histogram(
            "hub.delivery.latency",
            unit="s",
            description="From the event being recorded to the partner acknowledging it.",
        )
        self.delivery_retries = meter.create_counter(
            "hub.delivery.retries", unit="{attempt}", description="Delivery attempts retried."
        )
        self.commit_units = meter.create_histogram(
            "hub.gateway.commit.units",
            unit="{request}",
            description="Requests whose writes one gateway transaction committed (group commit).",
        )
        self.commit_separated = meter.create_counter(
            "hub.gateway.commit.separated",
            unit="{transaction}",
            description="Shared transactions rolled back for one request's failure; each of "
            "their requests then ran alone.",
        )
        self.deadletters = meter.create_counter(
            "hub.deadletters", unit="{record}", description="Records sent to the dead-letter topic."
        )


def configure(
    settings: Settings,
    *,
    service: str,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> None:
    """Set up tracing and metrics for this process (tests pass in-memory processors/readers)."""
    global _tracer_provider, _meter_provider, _instruments, _measured
    resource = Resource.create(
        {"service.name": settings.otel_service_name or f"talent-hub-{service}"}
    )
    processors = list(span_processors)
    readers = list(metric_readers)
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        base = endpoint.rstrip("/")
        processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        readers.append(
            PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
        )
    if settings.metrics_port:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        readers.append(PrometheusMetricReader())
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    stable_http_conventions()
    with _lock:
        if processors:
            provider = TracerProvider(resource=resource)
            for processor in processors:
                provider.add_span_processor(processor)
            _tracer_provider = provider
            _instrument_httpx(provider)
        else:
            _tracer_provider = NoOpTracerProvider()
        _trace_statements(bool(processors))
        _meter_provider = MeterProvider(
            resource=resource, metric_readers=readers, views=latency_views()
        )
        _instruments = Instruments(_meter_provider.get_meter(SCOPE))
        _measured = bool(readers)


#: Buckets for requests per gateway transaction (HUB_GATEWAY_GROUP_COMMIT is at most 256).
COMMIT_UNIT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def latency_views() -> list[View]:
    """Explicit buckets for the hub's histograms: seconds for durations, and requests per
    gateway transaction."""
    aggregation = ExplicitBucketHistogramAggregation(boundaries=LATENCY_BUCKETS)
    views = [View(instrument_name=name, aggregation=aggregation) for name in LATENCY_HISTOGRAMS]
    units = ExplicitBucketHistogramAggregation(boundaries=COMMIT_UNIT_BUCKETS)
    return [*views, View(instrument_name="hub.gateway.commit.units", aggregation=units)]


def stable_http_conventions() -> None:
    """HTTP spans and metrics with the stable names (``http.request.method``, ``url.full``,
    ``http.server.request.duration``) instead of the old ones (``http.method``, ``http.url``).

    The instrumentations of 0.66b2 still default to the old names and read the opt-in once,
    at their first use; the hub opts in for itself so no deployment has to remember to.
    """
    from opentelemetry.instrumentation._semconv import (
        OTEL_SEMCONV_STABILITY_OPT_IN,
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )

    os.environ[OTEL_SEMCONV_STABILITY_OPT_IN] = "http"
    stability = _OpenTelemetrySemanticConventionStability
    signal = _OpenTelemetryStabilitySignalType.HTTP
    if stability._get_opentelemetry_stability_opt_in_mode(signal) is not _StabilityMode.HTTP:
        stability._initialized = False
        stability._initialize()


def _without_query(span: Span, request: Any) -> None:
    """``url.full`` without the query string: partner URLs may carry tokens or ids in it."""
    url = getattr(request, "url", None)
    if url is None or not span.is_recording():
        return
    if isinstance(url, tuple):  # transport level: (scheme, host, port, raw path)
        scheme, host, port, raw_path = url
        url = httpx.URL(scheme=scheme.decode(), host=host.decode(), port=port, path="/")
        url = url.copy_with(raw_path=raw_path)
    span.set_attribute("url.full", str(url.copy_with(query=None, fragment=None)))


def _instrument_httpx(provider: TracerProvider) -> None:
    """Client spans (and ``traceparent``) on every httpx request: partner calls, JWKS, OIDC."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(
        tracer_provider=provider,
        request_hook=_without_query,
        async_request_hook=_async_without_query,
    )


async def _async_without_query(span: Span, request: Any) -> None:
    _without_query(span, request)


def reset() -> None:
    """Back to no-op telemetry (tests)."""
    global _tracer_provider, _meter_provider, _instruments, _measured
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    with _lock:
        if isinstance(_meter_provider, MeterProvider):
            _meter_provider.shutdown()
        _tracer_provider = NoOpTracerProvider()
        _trace_statements(False)
        _meter_provider = NoOpMeterProvider()
        _instruments = None
        _measured = False


def tracer_provider() -> trace.TracerProvider:
    """The provider instrumentations should use."""
    return _tracer_provider


def meter_provider() -> Any:
    """The process's meter provider (a no-op one until ``configure``)."""
    return _meter_provider


def measuring() -> bool:
    """True when this process's metrics go somewhere (OTLP, Prometheus or a test reader)."""
    return _measured


def tracing() -> bool:
    """True when spans are recorded: a span processor (an exporter) is configured."""
    return not isinstance(_tracer_provider, NoOpTracerProvider)


def tracer() -> Tracer:
    """The hub's tracer."""
    return _tracer_provider.get_tracer(SCOPE)


def metrics() -> Instruments:
    """The hub's instruments (no-op ones until ``configure`` ran)."""
    global _instruments
    with _lock:
        if _instruments is None:
            _instruments = Instruments(_meter_provider.get_meter(SCOPE))
        return _instruments


def observe(
    name: str,
    *,
    unit: str,
    description: str,
    read: Callable[[], Iterable[tuple[float, dict[str, str]]]],
) -> None:
    """Register a gauge whose values are read when metrics are collected."""

    def callback(options: CallbackOptions) -> Iterator[Observation]:
        for value, attributes in read():
            yield Observation(value, attributes)

    metrics().meter.create_observable_gauge(
        name, callbacks=[callback], unit=unit, description=description
    )


# ---------------------------------------------------------------------- trace context


def inject() -> list[list[str]]:
    """The current trace context as outbox header pairs (empty when nothing is traced)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [[name, value] for name, value in carrier.items()]


def extract(headers: Iterable[tuple[str, Any]] | None) -> Context:
    """The trace context carried in Kafka or outbox headers (str or bytes values)."""
    carrier: dict[str, str] = {}
    for name, value in headers or []:
        if name in (TRACEPARENT, "tracestate"):
            carrier[name] = value.decode() if isinstance(value, bytes) else str(value)
    return propagate.extract(carrier)


def with_context(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Kafka headers with the trace context replaced by the current one."""
    kept = [(n, v) for n, v in headers if n not in (TRACEPARENT, "tracestate")]
    return kept + [(n, v.encode()) for n, v in inject()]


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[Span]:
    """A span of the hub's tracer; exceptions are recorded on it."""
    with tracer().start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes
    ) as current:
        yield current


# ---------------------------------------------------------------------- database spans


def instrument_engine(engine: Engine) -> None:
    """A client span around every SQL statement (no parameters: they may be personal data),
    while spans are recorded.

    The listeners are attached only then (now, or by a later :func:`configure`): any listener
    on the engine costs SQLAlchemy an event dispatch per statement, recorded or not."""
    with _lock:
        _engines.add(engine)
        if not isinstance(_tracer_provider, NoOpTracerProvider):
            _listen(engine)


def _statement_started(
    conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool
) -> None:
    system = conn.dialect.name
    operation = statement.lstrip().split(" ", 1)[0].upper()
    ctx._hub_span = tracer().start_span(
        f"{operation} {system}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": system, "db.operation": operation},
    )


def _statement_ended(
    conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool
) -> None:
    current = getattr(ctx, "_hub_span", None)
    if current is not None:
        current.end()


def _statement_failed(context: Any) -> None:
    current = getattr(context.execution_context, "_hub_span", None)
    if current is not None:
        current.record_exception(context.original_exception)
        current.end()


_STATEMENT_EVENTS = (
    ("before_cursor_execute", _statement_started),
    ("after_cursor_execute", _statement_ended),
    ("handle_error", _statement_failed),
)


def _trace_statements(on: bool) -> None:
    """Attach (``on``) or remove the statement listeners on every engine of this process."""
    for engine in list(_engines):
        if on:
            _listen(engine)
        else:
            _unlisten(engine)


def _listen(engine: Engine) -> None:
    for name, listener in _STATEMENT_EVENTS:
        if not event.contains(engine, name, listener):
            event.listen(engine, name, listener)


def _unlisten(engine: Engine) -> None:
    for name, listener in _STATEMENT_EVENTS:
        if event.contains(engine, name, listener):
            event.remove(engine, name, listener)
