"""The hub's JSON encoding for answers, event data and JSON columns (hub.jsontext)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select

from hub import jsontext
from hub.db import make_engine


def test_compact_utf8_that_reads_back_as_the_standard_librarys() -> None:
    value = {"family_name": "Müller-Lüdenscheidt", "given": "Ólafur", "n": 3, "ok": True}
    text = jsontext.text(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert "\\u" not in text and json.loads(text) == value
    assert jsontext.encode(value) == text.encode()


def test_keys_that_are_not_strings_become_strings_as_with_the_standard_library() -> None:
    value = {1: "a", 2: ["b"]}
    assert json.loads(jsontext.text(value)) == json.loads(json.dumps(value))


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError):
        jsontext.text({"key": object()})
    with pytest.raises(TypeError):
        jsontext.text({"key": b"bytes"})


def test_json_columns_are_written_with_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/columns.db")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    table.metadata.create_all(engine)
    value = {"name": "Öztürk", "at": "2026-12-07"}
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "doc": value}])
        raw = conn.exec_driver_sql("SELECT doc FROM t").scalar_one()
        assert raw == jsontext.text(value)
        assert conn.execute(select(table.c.doc)).scalar_one() == value
    engine.dispose()
