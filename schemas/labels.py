"""Labels for the catalogue's codes, one YAML file per language that a translator can edit.

Keys are systematic so that every reader (the Art. 15 report, the staff UI) finds the same
words: ``type.<id>``, ``status.<status>``, ``business.<CODE>``, ``field.<name>``,
``clock.<name>``, ``clock_state.<state>``, ``kind.<kind>``, ``purpose.<purpose>`` and
``reason.<code>``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import get_args

import yaml

from schemas.catalogue import Catalogue, Purpose
from schemas.lifecycle import HUB_REASONS, REASONS, Status

LANGUAGES = ("de", "en", "ar", "tr", "uk", "ru")
DEFAULT_LANGUAGE = "de"
RIGHT_TO_LEFT = frozenset({"ar"})
#: The person fields a partner may send, labelled like payload fields.
PERSON_FIELDS = ("given_name", "family_name", "birth_date")
#: Reasons the hub itself gives when it closes a referral (hub.privacy).
#: The states of a deadline clock (hub.deadlines.domain.State).
CLOCK_STATES = ("not-started", "running", "paused", "stopped", "expired")


@cache
def load_labels(language: str) -> dict[str, str]:
    """Every label shipped for ``language`` (empty for a language not shipped)."""
    if language not in LANGUAGES:
        return {}
    path = resources.files("schemas").joinpath(f"catalogue/labels/{language}.yaml")
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def label(language: str, key: str, code: str | None = None) -> str:
    """The label for ``key``: in ``language``, else German, else the bare code."""
    found = load_labels(language).get(key) or load_labels(DEFAULT_LANGUAGE).get(key)
    return found or (code if code is not None else key.split(".", 1)[-1])


def pick_language(tag: str | None) -> str | None:
    """The shipped language a BCP 47 tag (``ar``, ``uk-UA``) asks for, if there is one."""
    primary = (tag or "").split("-")[0].strip().lower()
    return primary if primary in LANGUAGES else None


def required_keys(catalogue: Catalogue) -> set[str]:
    """The keys every shipped language must label: one per code the catalogue defines."""
    types = catalogue.types.values()
    return (
        {f"type.{t.id}" for t in types}
        | {f"status.{s.value}" for s in Status}
        | {f"business.{code}" for t in types for code in t.business_statuses}
        | {f"field.{name}" for t in types for name in t.payload}
        | {f"field.{name}" for name in PERSON_FIELDS}
        | {f"clock.{c.name}" for t in types for c in t.clocks}
        | {f"clock_state.{s}" for s in CLOCK_STATES}
        | {f"kind.{k}" for k in catalogue.partner_kinds}
        | {f"purpose.{p}" for p in get_args(Purpose)}
        | {f"reason.{r}" for codes in REASONS.values() for r in codes}
        | {f"reason.{r}" for r in HUB_REASONS}
    )
