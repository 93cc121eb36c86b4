"""Mein Verfahren's texts: every key in every language with the same placeholders, every
catalogue code explained, and the German and English texts in plain language.

Plain language is measured, not asserted by hope: no sentence longer than 20 words, and the
Flesch reading ease (Amstad's German version: 180 - ASL - 58.5 ASW; English: 206.835 -
1.015 ASL - 84.6 ASW) of all texts together at least 60, "easy to read" for a general
audience on both scales.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import date

import pytest

from hub.portal.words import LANGUAGES, Words, fixed_texts, plain_texts
from schemas.catalogue import load_catalogue
from schemas.lifecycle import REASONS, Status

MAX_WORDS = 20
MIN_EASE = 60.0


def placeholders(text: str) -> list[str]:
    return sorted(n for _, n, _, _ in string.Formatter().parse(text) if n)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("texts", [fixed_texts, plain_texts], ids=["fixed", "plain"])
def test_every_key_is_there_with_its_placeholders(
    language: str, texts: Callable[[str], dict[str, str]]
) -> None:
    german, other = texts("de"), texts(language)
    assert other, f"no texts for {language}"
    missing = sorted(set(german) - set(other))
    extra = sorted(set(other) - set(german))
    assert not missing and not extra, f"{language}: missing {missing}, unknown {extra}"
    for key, text in german.items():
        if key.startswith("format."):
            continue
        assert placeholders(other[key]) == placeholders(text), f"{language}: {key}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_dates_are_written_in_every_language(language: str) -> None:
    words = Words(language)
    written = words.day(date(2027, 3, 5))
    assert "2027" in written and "{" not in written


def test_the_catalogue_is_explained_in_plain_words() -> None:
    catalogue = load_catalogue()
    plain = plain_texts("de")
    needed = {f"type.{t}" for t in catalogue.types}
    needed |= {f"status.{s.value}" for s in Status}
    needed |= {f"business.{code}" for t in catalogue.types.values() for code in t.business_statuses}
    needed |= {f"reason.{r}" for reasons in REASONS.values() for r in reasons}
    needed |= {f"clock.{c.name}" for t in catalogue.types.values() for c in t.clocks}
    assert sorted(needed - set(plain)) == []


def syllables(word: str) -> int:
    groups = re.findall(r"[aeiouyäöü]+", word.lower())
    return max(1, len(groups))


def reading(texts: dict[str, str], language: str) -> tuple[float, list[str]]:
    sentences: list[list[str]] = []
    for key, text in texts.items():
        if key.startswith(("format.", "month.", "language.")):
            continue
        filled = re.sub(r"\{[a-z_]+\}", "Amt", text)
        for sentence in re.split(r"(?<=[.!?])\s+", filled.strip()):
            found = re.findall(r"[A-Za-zÄÖÜäöüß]+", sentence)
            if found:
                sentences.append(found)
    words = [w for s in sentences for w in s]
    asl = len(words) / len(sentences)
    asw = sum(syllables(w) for w in words) / len(words)
    ease = 180 - asl - 58.5 * asw if language == "de" else 206.835 - 1.015 * asl - 84.6 * asw
    long = [" ".join(s) for s in sentences if len(s) > MAX_WORDS]
    return ease, long


@pytest.mark.parametrize("language", ["de", "en"])
def test_the_texts_are_plain(language: str) -> None:
    texts = {**fixed_texts(language), **plain_texts(language)}
    ease, long = reading(texts, language)
    assert not long, f"sentences over {MAX_WORDS} words: {long}"
    assert ease >= MIN_EASE, f"reading ease {ease:.1f} below {MIN_EASE}"


def test_the_measure_sees_hard_text() -> None:
    hard = {
        "x": "Die Übermittlungsbefugnis der Ausländerbehörde bezüglich personenbezogener "
        "Informationen ergibt sich aus verwaltungsverfahrensrechtlichen Vorschriften."
    }
    ease, _ = reading(hard, "de")
    assert ease < MIN_EASE
