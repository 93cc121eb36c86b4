"""Log lines carry the trace and span id of the work they describe."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hub import logs, telemetry
from hub.settings import Settings


def test_a_log_line_names_its_trace_and_span() -> None:
    spans = InMemorySpanExporter()
    telemetry.configure(Settings(), service="test", span_processors=[SimpleSpanProcessor(spans)])
    out = io.StringIO()
    logger = logging.getLogger("hub.test.trace_ids")
    logger.addHandler(logs.handler("json", out))
    logger.setLevel(logging.INFO)
    try:
        with telemetry.span("work") as current:
            logger.info("inside", extra={"step": 1})
        logger.info("outside")
    finally:
        telemetry.reset()
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    context = current.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside
