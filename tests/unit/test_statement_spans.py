"""SQL statements get client spans while spans are recorded, and cost no event dispatch
otherwise: the engine's listeners come with ``telemetry.configure`` and go with ``reset``."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from hub import telemetry
from hub.settings import Settings


def statement_spans(exporter: InMemorySpanExporter) -> list[str]:
    return [
        s.name
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.CLIENT and (s.attributes or {}).get("db.system") == "sqlite"
    ]


def test_an_engine_made_before_tracing_is_traced_once_configured_and_not_after(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    telemetry.instrument_engine(engine)
    assert not engine.dispatch.before_cursor_execute  # nothing to dispatch while not tracing
    exporter = InMemorySpanExporter()
    telemetry.configure(Settings(), service="test", span_processors=[SimpleSpanProcessor(exporter)])
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert statement_spans(exporter) == ["SELECT sqlite"]
        with pytest.raises(OperationalError, match="no_such_table"), engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        failed = exporter.get_finished_spans()[-1]
        assert failed.events and failed.events[0].name == "exception"
    finally:
        telemetry.reset()
    assert not engine.dispatch.before_cursor_execute
    exporter.clear()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert exporter.get_finished_spans() == ()
    engine.dispose()


def test_an_engine_made_while_tracing_is_traced_at_once(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    telemetry.configure(Settings(), service="test", span_processors=[SimpleSpanProcessor(exporter)])
    try:
        engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        telemetry.instrument_engine(engine)
        telemetry.instrument_engine(engine)  # twice: still one span per statement
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert statement_spans(exporter) == ["SELECT sqlite"]
    finally:
        telemetry.reset()
        engine.dispose()
