"""The backlog figures: one query function, ``backlog``, and its CSV and JSON forms.

Every figure is counted by the database (GROUP BY), so the page stays fast on a large hub;
the figures are totals only, no personal data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from hub.deadlines.service import overdue_counts
from hub.partners.models import Partner
from hub.referrals.models import Referral, StatusHistory
from hub.web import wording
from hub.web.i18n import translate
from hub.web.wording import BERLIN
from schemas.lifecycle import TERMINAL, Status

Column = ColumnElement[Any] | QueryableAttribute[Any]

OPEN_STATUSES = [s.value for s in Status if s not in TERMINAL]
CLOSED_STATUSES = sorted(s.value for s in TERMINAL)
#: Age buckets of open referrals, youngest first: (key, first day of age in the bucket).
AGE_BUCKETS = (("under-7", 0), ("7-30", 7), ("31-90", 31), ("over-90", 91))
AGE_KEYS = [key for key, _ in AGE_BUCKETS]
WEEKS = 8


# ---------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Week:
    """One ISO week of throughput."""

    label: str  # e.g. 2026-W14
    start: date  # its Monday
    created: int
    closed: int

    @property
    def number(self) -> int:
        return self.start.isocalendar()[1]


@dataclass(frozen=True)
class Backlog:
    """The dashboard's figures; partners are performing partners, sorted by id."""

    now: datetime
    partner_names: dict[str, str]
    open: dict[str, dict[str, int]]  # partner -> open status -> referrals
    ages: dict[str, dict[str, int]]  # partner -> age bucket -> open referrals
    overdue: list[tuple[str, str, int]]  # (partner, referral type, overdue clocks)
    weeks: list[Week]  # oldest first, the current week last


def backlog(session: Session, *, now: datetime) -> Backlog:
    """Count the backlog as it stands at ``now``."""
    is_open = Referral.status.not_in(CLOSED_STATUSES)
    by_status = _grouped(session, Referral.performer_id, Referral.status, where=[is_open])
    by_age = _grouped(session, Referral.performer_id, _age_bucket(now), where=[is_open])
    return Backlog(
        now=now,
        partner_names={p: name for p, name in session.execute(select(Partner.id, Partner.name))},
        open=_table(by_status, OPEN_STATUSES),
        ages=_table([(p, AGE_KEYS[int(i)], n) for p, i, n in by_age], AGE_KEYS),
        overdue=overdue_counts(session, now=now),
        weeks=_weeks(session, now),
    )


def _grouped(
    session: Session, *columns: Column, where: Sequence[ColumnElement[bool]]
) -> list[tuple[Any, ...]]:
    """Row counts per distinct ``columns``, counted by the database.

    The columns are computed in a subquery, so PostgreSQL groups by expressions that carry
    parameters (a CASE) without seeing two different parameter sets.
    """
    inner = select(*(c.label(f"g{i}") for i, c in enumerate(columns))).where(*where).subquery()
    keys = list(inner.c)
    stmt = select(*keys, func.count()).group_by(*keys)
    return [(*row[:-1], int(row[-1])) for row in session.execute(stmt)]


def _age_bucket(now: datetime) -> ColumnElement[int]:
    """The index in AGE_BUCKETS of a referral's age (whole days since created_at)."""
    whens = [
        (Referral.created_at > now - timedelta(days=next_from), i)
        for i, (_, next_from) in enumerate(AGE_BUCKETS[1:])
    ]
    return case(*whens, else_=len(AGE_BUCKETS) - 1)


def _table(rows: Sequence[tuple[Any, ...]], keys: list[str]) -> dict[str, dict[str, int]]:
    """(partner, key, count) rows as partner -> every key -> count, partners sorted."""
    table: dict[str, dict[str, int]] = {}
    for partner, key, count in sorted(rows):
        table.setdefault(partner, dict.fromkeys(keys, 0))[key] = count
    return table


def _week_bounds(now: datetime) -> list[datetime]:
    """Mondays 00:00 in Duisburg: the start of each of the last WEEKS ISO weeks and the end."""
    today = now.astimezone(BERLIN).date()
    monday = today - timedelta(days=today.weekday())
    return [
        datetime.combine(monday - timedelta(weeks=back), time(), tzinfo=BERLIN)
        for back in range(WEEKS - 1, -2, -1)
    ]


def _weeks(session: Session, now: datetime) -> list[Week]:
    bounds = _week_bounds(now)
    created = _per_week(session, Referral.created_at, bounds, [])
    closed = _per_week(
        session,
        StatusHistory.recorded_at,
        bounds,
        [StatusHistory.status.in_(CLOSED_STATUSES)],
    )
    weeks = []
    for i, start in enumerate(bounds[:-1]):
        year, number, _ = start.date().isocalendar()
        label = f"{year}-W{number:02d}"
        weeks.append(Week(label, start.date(), created.get(i, 0), closed.get(i, 0)))
    return weeks


def _per_week(
    session: Session,
    column: QueryableAttribute[datetime],
    bounds: list[datetime],
    where: list[ColumnElement[bool]],
) -> dict[int, int]:
    """Rows per week index, for rows whose ``column`` lies within the bounds."""
    newest_first = [(column >= start, i) for i, start in reversed(list(enumerate(bounds[1:-1], 1)))]
    week = case(*newest_first, else_=0)
    in_range = [column >= bounds[0], column < bounds[-1], *where]
    return {int(i): n for i, n in _grouped(session, week, where=in_range)}


# ---------------------------------------------------------------------- exports


def as_json(figures: Backlog) -> dict[str, Any]:
    """The figures as plain JSON (what the browser test calls the chart data)."""
    return {
        "generated_at": figures.now.isoformat(),
        "open": figures.open,
        "age": figures.ages,
        "overdue": [{"partner": p, "type": t, "count": n} for p, t, n in figures.overdue],
        "throughput": [
            {
                "week": w.label,
                "start": w.start.isoformat(),
                "created": w.created,
                "closed": w.closed,
            }
            for w in figures.weeks
        ],
    }


def csv_rows(figures: Backlog) -> Iterator[tuple[str, str, str, int]]:
    """``(section, partner, key, value)`` rows of every figure on the page."""
    for section, table in (("open", figures.open), ("age", figures.ages)):
        for partner, counts in table.items():
            for key, value in counts.items():
                yield section, partner, key, value
    for partner, rtype, count in figures.overdue:
        yield "overdue", partner, rtype, count
    for w in figures.weeks:
        yield "throughput-created", "", w.label, w.created
        yield "throughput-closed", "", w.label, w.closed


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(figures: Backlog) -> str:
    """The figures with the catalogue's ids, for a spreadsheet or a script."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "partner", "key", "value"])
    for section, partner, key, value in csv_rows(figures):
        writer.writerow([section, _cell(partner), _cell(key), value])
    return out.getvalue()


def as_labelled_csv(figures: Backlog, lang: str) -> str:
    """The same rows as ``as_csv`` in words: partner names and labels in ``lang``."""

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    weeks = {
        w.label: t("dashboard.week.from", n=w.number, day=wording.day(w.start, lang))
        for w in figures.weeks
    }
    keys: dict[str, Callable[[str], str]] = {
        "open": lambda k: wording.label(lang, "status", k),
        "age": lambda k: t("dashboard.age." + k),
        "overdue": lambda k: wording.label(lang, "type", k),
        "throughput-created": weeks.__getitem__,
        "throughput-closed": weeks.__getitem__,
    }
    out = io.StringIO()
    writer = csv.writer(out)
    heads = ("dashboard.csv.section", "dashboard.partner", "dashboard.csv.key")
    writer.writerow([*(t(h) for h in heads), t("dashboard.csv.value")])
    for section, partner, key, value in csv_rows(figures):
        name = figures.partner_names.get(partner, partner)
        label = keys[section](key)
        writer.writerow([t("dashboard.csv." + section), _cell(name), _cell(label), value])
    return out.getvalue()
