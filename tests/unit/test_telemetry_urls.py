"""Client spans name the URL without its query string or fragment (partner URLs may carry
tokens or ids there), at the request and at the transport level of httpx."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub.telemetry import _without_query


def url_of(request: object) -> str:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("call") as span:
        span.set_attribute("url.full", "unset")
        _without_query(span, request)
    [finished] = exporter.get_finished_spans()
    return str((finished.attributes or {})["url.full"])


def test_a_request_loses_its_query_and_fragment() -> None:
    request = httpx.Request("POST", "https://partner.example:8443/hook/x?token=s3cr3t&id=p_1#frag")
    assert url_of(request) == "https://partner.example:8443/hook/x"


def test_a_transport_level_url_loses_its_query() -> None:
    class Raw:
        url = (b"https", b"partner.example", 8443, b"/hook/x?token=s3cr3t")

    assert url_of(Raw()) == "https://partner.example:8443/hook/x"
