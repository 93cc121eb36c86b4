"""Every shipped language labels every catalogue code and has every fixed text of the
Art. 15 report, with the same placeholders as the German original."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from hub.deadlines.domain import State
from hub.privacy.report_words import load_texts
from schemas.catalogue import load_catalogue
from schemas.labels import CLOCK_STATES, LANGUAGES, load_labels, required_keys

PLACEHOLDER = re.compile(r"\{(\w+)")


def test_the_clock_states_labelled_are_the_deadline_states() -> None:
    assert set(CLOCK_STATES) == set(get_args(State))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_code_has_a_label(language: str) -> None:
    labels = load_labels(language)
    missing = sorted(k for k in required_keys(load_catalogue()) if not labels.get(k))
    assert missing == []
    assert set(labels) == set(load_labels("de"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_fixed_text_is_there_with_its_placeholders(language: str) -> None:
    german, texts = load_texts("de"), load_texts(language)
    assert sorted(set(german) ^ set(texts)) == []
    for key, text in german.items():
        assert set(PLACEHOLDER.findall(texts[key])) == set(PLACEHOLDER.findall(text)), key
