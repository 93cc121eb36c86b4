"""Name normalisation and the Kölner Phonetik the client search compares by."""

from __future__ import annotations

from datetime import date

import pytest

from hub.people.names import (
    fold,
    koelner,
    koelner_digits,
    name_tokens,
    parse_day,
    parse_query,
    reference_key,
)


@pytest.mark.parametrize(
    ("word", "digits", "key"),
    [
        # The published examples (Postel 1969; de.wikipedia.org/wiki/Kölner_Phonetik).
        ("Müller-Lüdenscheidt", "60550750206880022", "65752682"),
        ("Wikipedia", "304010200", "3412"),
        ("Breschnew", "17088603", "17863"),
    ],
)
def test_koelner_phonetik_published_vectors(word: str, digits: str, key: str) -> None:
    assert koelner_digits(word) == digits
    assert koelner(word) == key


def test_koelner_phonetik_context_rules() -> None:
    assert koelner("Christoph") == "47823"  # initial C before H is 4, PH is 3
    assert koelner("Celina") == "856"  # initial C before E is 8
    assert koelner("Max") == "648"  # X not after C, K, Q is 48
    assert koelner("Fuchs") == "348"  # C after a vowel before H is 4, S is 8
    assert koelner("Schmidt") == "862"  # C after S is 8 (once), DT at the end 2
    assert koelner("Stadt") == "822" and koelner("Aachen") == "046"  # zeros go after merging
    assert koelner("") == ""


def test_meier_and_its_spellings_meet() -> None:
    assert {koelner(n) for n in ("Meier", "Mayer", "Maier", "Meyer", "Majer")} == {"67"}


@pytest.mark.parametrize(
    ("written", "searched"),
    [
        ("Müller", "Mueller"),
        ("Müller", "Muller"),
        ("Müller", "MÜLLER"),
        ("Straße", "Strasse"),
        ("Jäger", "Jaeger"),
        ("Öztürk", "Oeztuerk"),
        ("Łucja Öztürk", "lucja ozturk"),
        ("Олена Шевченко", "Olena Shevchenko"),
        ("Işıl İnce", "Isil Ince"),  # noqa: RUF001 - Turkish dotless i
        ("Zoë Ñúñez", "zoe nunez"),
        ("Μαρία", "Maria"),
        ("O'Brien", "OBrien"),
    ],
)
def test_spellings_of_one_name_fold_to_the_same_tokens(written: str, searched: str) -> None:
    assert name_tokens(written) == name_tokens(searched)


def test_other_scripts_become_latin_tokens() -> None:
    assert name_tokens("Олена Шевченко") == ["olena", "shevchenko"]
    assert name_tokens("محمد") == ["mhmd"]
    assert fold("Юлія") == "yuliya"


def test_hyphenated_and_several_names_split_into_tokens() -> None:
    assert name_tokens("Anna-Lena Maria", "Müller-Lüdenscheidt") == [
        "anna",
        "lena",
        "maria",
        "muller",
        "ludenscheidt",
    ]
    assert name_tokens("Wei", "Li", None) == ["wei", "li"]
    assert name_tokens("  ", None) == []


@pytest.mark.parametrize(
    ("text", "tokens", "birth"),
    [
        ("Wei Li", ("wei", "li"), None),
        ("mueller 1990-04-12", ("muller",), date(1990, 4, 12)),
        ("Maier 12.04.1990", ("maier",), date(1990, 4, 12)),
        ("1.4.1990 Öztürk", ("ozturk",), date(1990, 4, 1)),
        ("Li 31.02.1990", ("li", "31", "02", "1990"), None),  # no such day: not a date
    ],
)
def test_queries_split_into_tokens_and_a_birth_date(
    text: str, tokens: tuple[str, ...], birth: date | None
) -> None:
    query = parse_query(text)
    assert query.tokens == tokens
    assert query.birth_date == birth


def test_days_are_iso_or_german() -> None:
    assert parse_day("1990-04-12") == parse_day("12.04.1990") == date(1990, 4, 12)
    assert parse_day("12/04/1990") is None and parse_day("Maier") is None


def test_references_compare_without_case_or_blanks() -> None:
    assert reference_key(" es012345601 ") == reference_key("ES012345601") == "ES012345601"
