"""The gateway's spans come from the hub's own instrumentation (hub.telemetry) only.

FastAPI has telemetry of its own that switches itself on when the process has global
OpenTelemetry providers, as under ``opentelemetry-instrument``. The hub instruments its app
with its own providers, so FastAPI's would be a second server span for every request.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.hubtest import api_client, make_hub


def test_global_providers_add_no_span_of_fastapis_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # What trace.set_tracer_provider sets, undone after the test (it may be set only once).
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    assert trace.get_tracer_provider() is provider

    hub, partners = make_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    try:
        with api_client(hub) as client:
            headers = partners.headers(client, "ude")
            assert client.get("/v1/referrals", headers=headers).status_code == 200
            assert client.get("/health/live").status_code == 200
    finally:
        hub.engine.dispose()

    assert [span.name for span in exporter.get_finished_spans()] == []
