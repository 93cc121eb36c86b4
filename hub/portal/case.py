"""A client's case in plain language: each open and recent referral as steps.

Only what the catalogue explains reaches the client: the referral's type, its statuses,
business statuses and hold reasons as plain-language texts, the offices' names, dates, and
the clocks that protect the client. Partner references, notes, free-text outcomes, the
payload and who entered a change stay in the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.portal.words import Words, isolate
from hub.referrals import service as referrals
from hub.referrals.models import Referral, StatusHistory
from hub.settings import Settings
from schemas.catalogue import Catalogue
from schemas.lifecycle import ACTIVE, Role, Status, next_actor

#: Closed referrals stay on the page this long after their last change.
RECENT_DAYS = 180


@dataclass(frozen=True)
class Step:
    """One thing that happened, in words."""

    at: datetime
    texts: list[str]


@dataclass(frozen=True)
class Clock:
    """A deadline that protects the client, explained."""

    text: str
    overdue: bool


@dataclass
class CaseView:
    """One referral as the client sees it."""

    title: str
    about: str | None
    route: str
    open: bool
    steps: list[Step]
    next: str | None
    who_next: str
    todo: list[str] = field(default_factory=list)
    clocks: list[Clock] = field(default_factory=list)
    updated_at: datetime | None = None


def case_of(
    session: Session,
    person_id: str,
    *,
    words: Words,
    names: dict[str, str],
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> list[CaseView]:
    """The person's open referrals and those closed in the last ``RECENT_DAYS``, open first."""
    rows = session.scalars(
        select(Referral)
        .where(Referral.person_id == person_id, Referral.status != Status.ENTERED_IN_ERROR.value)
        .options(selectinload(Referral.history))
        .order_by(Referral.created_at.desc())
    ).all()
    active = {s.value for s in ACTIVE}
    since = now - timedelta(days=RECENT_DAYS)
    shown = [r for r in rows if r.status in active or r.updated_at >= since]
    views = [_view(session, r, words, names, catalogue, settings, now) for r in shown]
    return sorted(views, key=lambda v: not v.open)


def _view(
    session: Session,
    referral: Referral,
    words: Words,
    names: dict[str, str],
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> CaseView:
    performer = isolate(names.get(referral.performer_id, referral.performer_id))
    requester = isolate(names.get(referral.requester_id, referral.requester_id))
    offices = {"performer": performer, "requester": requester}
    history = sorted(referral.history, key=lambda h: (h.occurred_at, h.id))
    steps = [_step(h, referral.type, words, offices) for h in history]
    is_open = referral.status in {s.value for s in ACTIVE}
    todo = _todo(history[-1] if history else None, words, offices) if is_open else []
    role = next_actor(Status(referral.status)) if is_open else None
    if todo:
        who_next = words.t("case.you")
    elif role is None:
        who_next = words.t("case.nobody")
    else:
        office = performer if role is Role.PERFORMER else requester
        who_next = words.t("case.office", office=office)
    return CaseView(
        title=words.label("type", referral.type),
        about=words.plain(f"type.{referral.type}"),
        route=words.t("case.from_to", **offices),
        open=is_open,
        steps=[s for s in steps if s.texts],
        next=words.plain(f"next.{referral.status}", **offices) if is_open else None,
        who_next=who_next,
        todo=todo,
        clocks=_clocks(session, referral, words, offices, catalogue, settings, now)
        if is_open
        else [],
        updated_at=referral.updated_at,
    )


def _step(h: StatusHistory, type_: str, words: Words, offices: dict[str, str]) -> Step:
    texts = []
    if h.business_status:
        text = words.plain(f"business.{type_}.{h.business_status}", **offices) or words.plain(
            f"business.{h.business_status}", **offices
        )
        if text:
            texts.append(text)
    if not texts or h.status in ("on-hold", "rejected", "cancelled", "completed", "failed"):
        status_text = words.plain(f"status.{h.status}", **offices)
        if status_text and status_text not in texts:
            texts.insert(0, status_text)
    if h.reason:
        reason = words.plain(f"reason.{h.reason}", **offices)
        if reason:
            texts.append(reason)
    return Step(h.occurred_at, texts)


def _todo(latest: StatusHistory | None, words: Words, offices: dict[str, str]) -> list[str]:
    """What the client must do now, from the newest change."""
    if latest is None:
        return []
    found = []
    if latest.business_status:
        found.append(words.plain(f"todo.{latest.business_status}", **offices))
    if latest.status == Status.ON_HOLD.value and latest.reason:
        found.append(words.plain(f"todo.{latest.reason}", **offices))
    return [t for t in found if t]


def _clocks(
    session: Session,
    referral: Referral,
    words: Words,
    offices: dict[str, str],
    catalogue: Catalogue,
    settings: Settings,
    now: datetime,
) -> list[Clock]:
    found = []
    for c in referrals.clocks(session, referral, catalogue=catalogue, settings=settings):
        if c.state not in ("running", "paused", "expired") or c.due_at is None:
            continue
        day = c.due_date or c.due_at.date()
        text = words.plain(f"clock.{c.name}", day=words.day(day), **offices)
        if text:
            found.append(Clock(text, overdue=c.state == "expired" or c.due_at <= now))
    return found
