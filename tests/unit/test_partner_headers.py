"""Numbers a partner puts into its answer's headers are read as ASCII digits only."""

from __future__ import annotations

from connectors.http import _retry_after


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert _retry_after("120") == 120.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is not None


def test_retry_after_with_digits_that_are_not_ascii_is_ignored() -> None:
    # "²".isdigit() is true and float("²") fails: that would fail the push, not the partner.
    assert _retry_after("²") is None
    assert _retry_after("٣") is None
