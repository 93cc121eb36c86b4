"""The words of the Art. 15 report in the reader's language: fixed texts, catalogue labels,
dates and values, each escaped for HTML.

Fixed texts live in ``report_texts/<language>.yaml``, the catalogue's labels in
``schemas/catalogue/labels``; a translator edits those files, never this code.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from hub.crypto.cipher import ERASED
from schemas.labels import DEFAULT_LANGUAGE, LANGUAGES, label

BERLIN = ZoneInfo("Europe/Berlin")
NOTHING = "—"


@cache
def load_texts(language: str) -> dict[str, str]:
    """The report's fixed texts in ``language`` (empty for a language not shipped)."""
    if language not in LANGUAGES:
        return {}
    path = resources.files("hub.privacy").joinpath(f"report_texts/{language}.yaml")
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


class Words:
    """Texts, labels and dates for one reader's language, every result already escaped."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def t(self, key: str, **values: str) -> str:
        """A fixed text, with already escaped ``values`` filled in."""
        text = load_texts(self.language).get(key) or load_texts(DEFAULT_LANGUAGE).get(key, key)
        return html.escape(text).format(**values) if values else html.escape(text)

    def code(self, prefix: str, code: str | None) -> str:
        """The label of a catalogue code (``status``, ``business`` …), or a dash for none."""
        return html.escape(label(self.language, f"{prefix}.{code}", code)) if code else NOTHING

    def when(self, iso: str | None) -> str:
        """A moment to the minute in German local time, written the reader's way."""
        if not iso:
            return NOTHING
        at = datetime.fromisoformat(iso).astimezone(BERLIN)
        return self._format("format.datetime", at)

    def day(self, value: str | None) -> str:
        """A calendar date written the reader's way (other text is shown as it is)."""
        try:
            parsed = date.fromisoformat(str(value))
        except ValueError:
            return self.value(value)
        return self._format("format.date", parsed)

    def value(self, value: Any) -> str:
        """A stored value: yes/no for booleans, a note for an erased one, escaped text."""
        if value is None or value == "":
            return NOTHING
        if value == ERASED:
            return self.t("erased_value")
        if isinstance(value, bool):
            return self.t("answer.yes" if value else "answer.no")
        return html.escape(str(value))

    def basis(self, legal_basis: str | None) -> str:
        """A legal basis: the statute as written, consent in words."""
        if legal_basis and legal_basis.strip().lower() == "consent":
            return self.t("basis.consent")
        return self.value(legal_basis)

    def partner(self, partner: dict[str, Any] | None) -> str:
        return self.value((partner or {}).get("name"))

    def _format(self, key: str, at: date) -> str:
        parts = {"year": at.year, "month": at.month, "day": at.day}
        if isinstance(at, datetime):
            parts |= {"hour": at.hour, "minute": at.minute}
        pattern = load_texts(self.language).get(key) or load_texts(DEFAULT_LANGUAGE)[key]
        return html.escape(pattern.format(**parts))


def table(w: Words, heads: list[str], rows: list[list[str]]) -> str:
    """A table of already escaped cells; one row saying "none" when there are no rows."""
    head = "".join(f'<th scope="col">{w.t(h)}</th>' for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(heads)}">{w.t("none")}</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"
