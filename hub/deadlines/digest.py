"""The daily digest per partner: its overdue referrals and the deadlines of the next week.

Sent by SMTP when ``HUB_SMTP_HOST`` is set, otherwise written to
``<data dir>/digests/<date>/<partner>.txt`` (the embedded default). No personal data: ids,
types, clock names and dates only.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.deadlines.models import ClockInstance
from hub.settings import Settings

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
    lines: dict[str, list[str]] = defaultdict(list)
    for c in session.scalars(stmt):
        assert c.due_at is not None
        label = "ÜBERFÄLLIG / overdue" if c.due_at < now else "fällig / due"
        lines[c.performer_id].append(
            f"- {label} {c.due_at:%Y-%m-%d %H:%M} UTC  "
            f"{c.referral_type} {c.referral_id}  ({c.name})"
            + (f"  Vorschlag: {c.suggestion}" if c.suggestion else "")
        )
    return {
        partner: f"Talent Hub - Fristen / deadlines {now:%Y-%m-%d}\n\n" + "\n".join(items) + "\n"
        for partner, items in lines.items()
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
