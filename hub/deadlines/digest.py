"""The daily digest per partner: its overdue referrals and the deadlines of the next week.

Sent by SMTP when ``HUB_SMTP_HOST`` is set, otherwise written to
``<data dir>/digests/<date>/<partner>.txt`` (the embedded default). No personal data: the
referral types and deadlines by their labels, in German and then in English, dates in
Duisburg's time, and the referral id to look one up.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.dates import day, moment
from hub.deadlines.models import ClockInstance
from hub.settings import Settings
from schemas.labels import label

LOOKAHEAD = timedelta(days=7)


def compose(session: Session, *, now: datetime) -> dict[str, str]:
    """Digest text per performing partner that has something overdue or due soon."""
    stmt = (
        select(ClockInstance)
        .where(
            ClockInstance.state.in_(("running", "expired")),
            ClockInstance.due_at.is_not(None),
            ClockInstance.due_at < now + LOOKAHEAD,
        )
        .order_by(ClockInstance.performer_id, ClockInstance.due_at)
    )
    clocks: dict[str, list[ClockInstance]] = defaultdict(list)
    for c in session.scalars(stmt):
        clocks[c.performer_id].append(c)
    return {
        partner: "\n".join(_section(lang, items, now) for lang in ("de", "en"))
        for partner, items in clocks.items()
    }


def _section(lang: str, clocks: list[ClockInstance], now: datetime) -> str:
    """One language's part of a digest: a heading and a line per clock, in words."""
    words = _WORDS[lang]
    lines = [words["title"].format(day=day(now.date(), lang)), ""]
    for c in clocks:
        assert c.due_at is not None
        state = words["overdue" if c.due_at < now else "due"]
        kind = label(lang, f"type.{c.referral_type}", c.referral_type)
        clock = label(lang, f"clock.{c.name}", c.name)
        line = f"- {state} {moment(c.due_at, lang)}: {kind}, {words['clock']} „{clock}“"
        line += f" ({words['referral']} {c.referral_id})"
        if c.suggestion:
            line += f"; {words['suggestion']}: {c.suggestion}"
        lines.append(line)
    return "\n".join(lines) + "\n"


_WORDS = {
    "de": {
        "title": "Talent Hub - Fristen am {day}",
        "overdue": "ÜBERFÄLLIG seit",
        "due": "fällig am",
        "clock": "Frist",
        "referral": "Überweisung",
        "suggestion": "Vorschlag",
    },
    "en": {
        "title": "Talent Hub - deadlines on {day}",
        "overdue": "OVERDUE since",
        "due": "due on",
        "clock": "deadline",
        "referral": "referral",
        "suggestion": "suggestion",
    },
}


def send(digests: dict[str, str], *, settings: Settings, now: datetime) -> list[str]:
    """Deliver each digest (SMTP or files); returns where each went."""
    if settings.smtp_host:
        return [
            _mail(partner, text, settings)
            for partner, text in digests.items()
            if partner in settings.digest_recipients
        ]
    folder = settings.data_dir / "digests" / f"{now:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    return [_write(folder / f"{partner}.txt", text) for partner, text in digests.items()]


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _mail(partner: str, text: str, settings: Settings) -> str:
    message = EmailMessage()
    message["Subject"] = "Talent Hub: Fristen / deadlines"
    message["From"] = settings.smtp_from
    message["To"] = settings.digest_recipients[partner]
    message.set_content(text)
    with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    return settings.digest_recipients[partner]
