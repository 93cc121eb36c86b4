"""docs/privacy.md carries the record of processing generated from the route policy."""

from __future__ import annotations

from pathlib import Path

from hub.policy.model import load_policy
from hub.policy.record import render, replace_in
from schemas.catalogue import load_catalogue

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def test_record_of_processing_matches_the_policy() -> None:
    catalogue = load_catalogue()
    generated = render(load_policy(catalogue), catalogue)
    assert replace_in(DOC, generated) == DOC.read_text(encoding="utf-8"), (
        "docs/privacy.md drifted from the policy: run hub policy record --write docs/privacy.md"
    )
