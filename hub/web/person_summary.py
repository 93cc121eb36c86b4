"""The head of the person page: the open referrals, who acts next, what falls due.

A caseworker opening a client wants the open work first: what is pending with whom and
which deadline is next or already missed. The timeline below is the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from hub.referrals import service as referrals
from hub.referrals.models import Referral
from hub.settings import Settings
from hub.web.i18n import add_words
from schemas.catalogue import Catalogue
from schemas.lifecycle import ACTIVE, Role, Status, next_actor

add_words(
    {
        "summary.title": ("Offene Überweisungen", "Open referrals"),
        "summary.none": ("Keine offenen Überweisungen.", "No open referrals."),
        "summary.step": ("Stand", "Step"),
        "summary.next": ("Am Zug", "Next to act"),
        "summary.as.performer": ("leistende Stelle", "performing partner"),
        "summary.as.requester": ("anfragende Stelle", "requesting partner"),
        "summary.due": ("Nächste Frist", "Next deadline"),
        "summary.no_due": ("keine laufende Frist", "no running deadline"),
        "summary.overdue": ("Überfällig", "Overdue"),
        "summary.overdue_since": ("{clock}, fällig am {day}", "{clock}, due on {day}"),
        "summary.count": (
            "{n} offen, davon {late} überfällig",
            "{n} open, {late} of them overdue",
        ),
        "timeline.delivered_to": ("zugestellt an", "delivered to"),
        "timeline.failed_to": ("Zustellung gescheitert an", "delivery failed to"),
        "timeline.details": ("Einzelheiten", "Details"),
        "timeline.delivery": ("Zustellung", "Delivery"),
    }
)


@dataclass(frozen=True)
class Due:
    """One deadline of an open referral: the clock's name and the last day of its period."""

    clock: str
    due_at: datetime
    day: date | None


@dataclass(frozen=True)
class OpenReferral:
    """An open referral as the person page's summary shows it."""

    referral: Referral
    actor_role: Role | None
    actor: str | None
    hold_reason: str | None
    next_due: Due | None
    overdue: list[Due]


def open_referrals(
    session: Session,
    refs: list[Referral],
    *,
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> list[OpenReferral]:
    """The referrals not in a terminal status, overdue ones first, then by next deadline."""
    active = {s.value for s in ACTIVE}
    found = [_summary(session, r, catalogue, settings, now) for r in refs if r.status in active]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    return sorted(
        found,
        key=lambda o: (not o.overdue, o.next_due.due_at if o.next_due else far),
    )


def _summary(
    session: Session, referral: Referral, catalogue: Catalogue, settings: Settings, now: datetime
) -> OpenReferral:
    clocks = referrals.clocks(session, referral, catalogue=catalogue, settings=settings)
    dues = [
        (c, Due(c.name, c.due_at, c.due_date))
        for c in clocks
        if c.due_at is not None and c.state in ("running", "expired")
    ]
    overdue = [d for c, d in dues if c.state == "expired" or d.due_at <= now]
    pending = sorted((d for _, d in dues if d not in overdue), key=lambda d: d.due_at)
    role = next_actor(Status(referral.status))
    actor = {Role.PERFORMER: referral.performer_id, Role.REQUESTER: referral.requester_id}
    return OpenReferral(
        referral=referral,
        actor_role=role,
        actor=actor.get(role) if role else None,
        hold_reason=_hold_reason(referral),
        next_due=pending[0] if pending else None,
        overdue=overdue,
    )


def _hold_reason(referral: Referral) -> str | None:
    if referral.status != Status.ON_HOLD or not referral.history:
        return None
    latest = max(referral.history, key=lambda h: (h.occurred_at, h.id))
    return latest.reason
