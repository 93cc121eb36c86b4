"""The committed JSON Schema files must match the models (regenerate: python -m schemas.export)."""

from __future__ import annotations

from schemas.export import OUT_DIR, rendered


def test_committed_schemas_match_models() -> None:
    expected = rendered()
    committed = {p.name: p.read_text(encoding="utf-8") for p in OUT_DIR.glob("*.json")}
    assert set(committed) == set(expected), "schema files added or missing"
    drifted = [name for name, text in expected.items() if committed[name] != text]
    assert not drifted, f"schemas drifted from the models: {drifted}; run python -m schemas.export"
