"""The portal's words in the client's language: fixed texts, plain-language catalogue texts,
labels and dates.

Fixed texts live in ``texts/<language>.yaml``, the catalogue's plain-language texts in
``schemas/catalogue/plain/<language>.yaml``; a translator edits those files, never this
code. Values are returned unescaped: the templates escape everything they print.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

import yaml

from schemas.labels import label

LANGUAGES = ("de", "en", "ar", "tr", "uk", "ru")
DEFAULT_LANGUAGE = "de"
RIGHT_TO_LEFT = frozenset({"ar"})
BERLIN = ZoneInfo("Europe/Berlin")


@cache
def fixed_texts(language: str) -> dict[str, str]:
    """The portal's fixed texts in ``language`` (empty for a language not shipped; a missing
    key or file shows the German text, and tests/unit/test_portal_texts.py fails on it)."""
    if language not in LANGUAGES:
        return {}
    path = resources.files("hub.portal").joinpath(f"texts/{language}.yaml")
    return _load(path.read_text("utf-8")) if path.is_file() else {}


@cache
def plain_texts(language: str) -> dict[str, str]:
    """The catalogue's plain-language texts in ``language``."""
    if language not in LANGUAGES:
        return {}
    path = resources.files("schemas").joinpath(f"catalogue/plain/{language}.yaml")
    return _load(path.read_text("utf-8")) if path.is_file() else {}


def _load(text: str) -> dict[str, str]:
    data = yaml.safe_load(text) or {}
    return {str(k): str(v) for k, v in data.items()}


def isolate(name: str) -> str:
    """A name set apart from the sentence around it (Unicode first-strong isolate): a Latin
    office name inside Arabic text keeps its own direction and does not reorder the words
    around it."""
    return f"\u2068{name}\u2069"


def pick(tag: str | None) -> str | None:
    """The shipped language a BCP 47 tag (``ar``, ``uk-UA``) asks for, if there is one."""
    primary = (tag or "").split("-")[0].split("_")[0].strip().lower()
    return primary if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The first shipped language of an Accept-Language header, by the client's weights."""
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        found = pick(tag)
        if found and weight > 0:
            offers.append((-weight, position, found))
    return min(offers)[2] if offers else None


class Words:
    """Texts, labels and dates for one reader's language."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.rtl = self.language in RIGHT_TO_LEFT

    def t(self, key: str, **values: object) -> str:
        """A fixed text with ``values`` filled in (German if the language lacks it)."""
        text = fixed_texts(self.language).get(key) or fixed_texts(DEFAULT_LANGUAGE).get(key, key)
        return text.format(**values) if values else text

    def plain(self, key: str, **values: object) -> str | None:
        """A plain-language catalogue text, or None where the catalogue has none."""
        text = plain_texts(self.language).get(key) or plain_texts(DEFAULT_LANGUAGE).get(key)
        if text is None:
            return None
        return text.format(**values) if values else text

    def label(self, kind: str, code: str | None) -> str:
        """The catalogue label of a code (``type``, ``purpose`` …)."""
        return label(self.language, f"{kind}.{code}", code) if code else ""

    def day(self, value: date) -> str:
        """A calendar date the reader's way, the month by name where the language wants it."""
        return self._format("format.date", value.year, value.month, value.day, 0, 0)

    def moment(self, at: datetime) -> str:
        """A moment to the minute in German local time, the reader's way."""
        local = at.astimezone(BERLIN)
        return self._format(
            "format.datetime", local.year, local.month, local.day, local.hour, local.minute
        )

    def _format(self, key: str, year: int, month: int, day: int, hour: int, minute: int) -> str:
        return self.t(key).format(
            year=year,
            month=month,
            day=day,
            hour=hour,
            minute=minute,
            month_name=self.t(f"month.{month}"),
        )
