"""Names, birth dates and partner references as the search compares them: pure rules, no I/O.

A name is folded to lower-case ASCII before it is split into tokens, so that the spellings
a caseworker meets for one person compare equal:

* German umlauts and ß: ``ü = ue = u``, ``ö = oe = o``, ``ä = ae = a``, ``ß = ss``. The
  digraphs are folded everywhere (``Samuel`` becomes ``samul``); that costs a few extra
  coincidences and spares guessing where a digraph stands for an umlaut.
* Other scripts are transliterated to Latin with ``anyascii`` (ISC licence: Cyrillic incl.
  Ukrainian, Greek, Arabic, Turkish dotless and dotted i, Polish ``ł`` …); accents go with it.
* Hyphens, spaces and other separators split tokens (``Müller-Lüdenscheidt`` is ``muller``
  and ``ludenscheidt``: either part finds the person); apostrophes join (``O'Brien``).

The phonetic key is the Kölner Phonetik (Postel 1969), made for German names: ``Meier``,
``Mayer``, ``Maier`` and ``Meyer`` share ``67``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from anyascii import anyascii

_UMLAUTS = str.maketrans({"ä": "a", "ö": "o", "ü": "u"})
_DIGRAPHS = re.compile(r"([aou])e")
_APOSTROPHES = re.compile(r"['`\u2019\u02bc]")
_SEPARATORS = re.compile(r"[^a-z0-9]+")
_ISO_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_GERMAN_DAY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def fold(text: str) -> str:
    """Lower-case ASCII: case folded, umlaut digraphs merged, other scripts transliterated."""
    folded = unicodedata.normalize("NFC", text).casefold().translate(_UMLAUTS)
    ascii_text = anyascii(folded)
    stripped = unicodedata.normalize("NFKD", ascii_text).encode("ascii", "ignore").decode()
    return _DIGRAPHS.sub(r"\1", _APOSTROPHES.sub("", stripped.lower()))


def name_tokens(*names: str | None) -> list[str]:
    """The distinct tokens of the given names, in order."""
    tokens: dict[str, None] = {}
    for name in names:
        for token in _SEPARATORS.split(fold(name or "")):
            if token:
                tokens[token] = None
    return list(tokens)


# Kölner Phonetik: letter -> code, context rules below. H and separators have no code.
_SIMPLE = {
    **dict.fromkeys("aeijouy", "0"),
    "b": "1",
    **dict.fromkeys("fvw", "3"),
    **dict.fromkeys("gkq", "4"),
    "l": "5",
    **dict.fromkeys("mn", "6"),
    "r": "7",
    **dict.fromkeys("sz", "8"),
}


def koelner_digits(word: str) -> str:
    """The Kölner Phonetik code of each letter, before repeats and zeros are removed."""
    letters = [c for c in fold(word) if "a" <= c <= "z"]
    out = []
    for i, c in enumerate(letters):
        prev = letters[i - 1] if i else ""
        nxt = letters[i + 1] if i + 1 < len(letters) else ""
        out.append(_code(c, prev, nxt, initial=i == 0))
    return "".join(out)


def _code(c: str, prev: str, nxt: str, *, initial: bool) -> str:
    if c in _SIMPLE:
        return _SIMPLE[c]
    if c == "p":
        return "3" if nxt == "h" else "1"
    if c in "dt":
        return "8" if nxt and nxt in "csz" else "2"
    if c == "x":
        return "8" if prev and prev in "ckq" else "48"
    if c == "c":
        if initial:
            return "4" if nxt and nxt in "ahkloqrux" else "8"
        if prev and prev in "sz":
            return "8"
        return "4" if nxt and nxt in "ahkoqux" else "8"
    return ""  # h


def koelner(word: str) -> str:
    """The Kölner Phonetik key: ``Müller-Lüdenscheidt`` is ``65752682``."""
    digits = koelner_digits(word)
    collapsed = [d for i, d in enumerate(digits) if i == 0 or d != digits[i - 1]]
    return "".join(d for i, d in enumerate(collapsed) if d != "0" or i == 0)


@dataclass(frozen=True)
class NameQuery:
    """What a caseworker typed into the search: name tokens and perhaps a birth date."""

    tokens: tuple[str, ...]
    birth_date: date | None


def parse_query(text: str) -> NameQuery:
    """Split a query into name tokens and a birth date (``1990-04-12`` or ``12.04.1990``)."""
    words, birth = [], None
    for word in text.split():
        day = parse_day(word.strip(",;"))
        if day is not None and birth is None:
            birth = day
        else:
            words.append(word)
    return NameQuery(tokens=tuple(name_tokens(" ".join(words))), birth_date=birth)


def parse_day(text: str) -> date | None:
    """A calendar date written ISO or the German way; None if it is not one."""
    iso, german = _ISO_DAY.match(text), _GERMAN_DAY.match(text)
    if iso:
        year, month, day = iso.groups()
    elif german:
        day, month, year = german.groups()
    else:
        return None
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def reference_key(reference: str) -> str:
    """A partner reference as staff search compares it: no surrounding blanks, upper case."""
    return unicodedata.normalize("NFKC", reference).strip().upper()
