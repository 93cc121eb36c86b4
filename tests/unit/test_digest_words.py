"""The daily deadline digest names types and deadlines by their labels, with dates in
Duisburg's time to the minute, in German and in English."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.deadlines.digest import _section
from hub.deadlines.models import ClockInstance

NOW = datetime(2026, 12, 3, 13, 5, tzinfo=UTC)


def test_a_digest_line_is_in_words_not_codes() -> None:
    clock = ClockInstance(
        referral_id="r-1",
        name="decision",
        referral_type="recognition.assessment",
        performer_id="ihk-fosa",
        requester_id="amt",
        person_id="p_x",
        state="expired",
        due_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    )
    german = _section("de", [clock], NOW)
    assert "ÜBERFÄLLIG seit 01.12.2026, 10:30" in german
    assert "Anerkennung einer ausländischen Berufsqualifikation" in german
    assert "Fristen am 03.12.2026" in german
    english = _section("en", [clock], NOW)
    assert "OVERDUE since 1 Dec 2026, 10:30" in english and "(referral r-1)" in english
    for text in (german, english):
        assert "recognition.assessment" not in text and "UTC" not in text
        assert "„decision“" not in text
