"""Dates and moments as people in Duisburg read them: to the minute, in Europe/Berlin,
German ``03.12.2026, 14:05`` or English ``3 Dec 2026, 14:05``."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(value: date, lang: str) -> str:
    """A calendar date: ``03.12.2026`` in German, ``3 Dec 2026`` in English."""
    if lang == "de":
        return f"{value.day:02d}.{value.month:02d}.{value.year}"
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year}"


def moment(value: datetime, lang: str) -> str:
    """A moment to the minute in Duisburg's time: ``03.12.2026, 14:05``."""
    at = value.astimezone(BERLIN)
    return f"{day(at.date(), lang)}, {at.hour:02d}:{at.minute:02d}"
