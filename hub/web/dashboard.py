"""Staff pages: the backlog dashboard (totals only, no personal data).

The page, its CSV export and its JSON view share one query function, ``backlog``; every
figure is counted by the database (GROUP BY), so the page stays fast on a large hub.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from hub.db import unit_of_work, utcnow
from hub.deadlines.service import overdue_counts
from hub.partners.models import Partner
from hub.referrals.models import Referral, StatusHistory
from hub.web import wording
from hub.web.accounts import Staff
from hub.web.i18n import add_words, translate
from hub.web.pages import PREFIX, lang_of, render, require, viewing
from hub.web.wording import BERLIN
from schemas.lifecycle import TERMINAL, Status

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Column = ColumnElement[Any] | QueryableAttribute[Any]

ROLES = ("caseworker", "team_lead", "admin")
OPEN_STATUSES = [s.value for s in Status if s not in TERMINAL]
CLOSED_STATUSES = sorted(s.value for s in TERMINAL)
#: Age buckets of open referrals, youngest first: (key, first day of age in the bucket).
AGE_BUCKETS = (("under-7", 0), ("7-30", 7), ("31-90", 31), ("over-90", 91))
AGE_KEYS = [key for key, _ in AGE_BUCKETS]
WEEKS = 8

# The 4.5:1 colours of hub.css (--accent, --muted, --ok, --ink, --warn, --bad).
ACCENT, MUTED, OK, INK, WARN, BAD = (
    "#00507a",
    "#4a5260",
    "#1e6b34",
    "#1b1f24",
    "#8a4b00",
    "#a1162b",
)
STATUS_COLOURS = dict(zip(OPEN_STATUSES, (ACCENT, MUTED, OK, INK, WARN), strict=True))
AGE_COLOURS = dict(zip(AGE_KEYS, (OK, ACCENT, WARN, BAD), strict=True))

add_words(
    {
        "dashboard.intro": (
            "Nur Summen, keine personenbezogenen Daten.",
            "Totals only, no personal data.",
        ),
        "dashboard.as_of": ("Stand: {at}", "As of {at}"),
        "dashboard.csv": ("Als CSV herunterladen", "Download as CSV"),
        "dashboard.csv.codes": (
            "CSV mit Kennungen statt Bezeichnungen (für Auswertungen)",
            "CSV with ids instead of labels (for analysis)",
        ),
        "dashboard.csv.section": ("Bereich", "Section"),
        "dashboard.csv.key": ("Merkmal", "Category"),
        "dashboard.csv.value": ("Anzahl", "Count"),
        "dashboard.csv.open": ("offen nach Stand", "open by status"),
        "dashboard.csv.age": ("offen nach Alter", "open by age"),
        "dashboard.csv.overdue": ("überfällige Fristen", "overdue deadlines"),
        "dashboard.csv.throughput-created": ("angelegt", "created"),
        "dashboard.csv.throughput-closed": ("abgeschlossen", "closed"),
        "dashboard.week.from": ("KW {n} ab {day}", "W{n} from {day}"),
        "dashboard.same_numbers": (
            "Die gleichen Zahlen stehen in der Tabelle daneben.",
            "The same numbers are in the table next to it.",
        ),
        "dashboard.none": ("Keine Daten.", "No data."),
        "dashboard.partner": ("Ausführender Partner", "Performing partner"),
        "dashboard.type": ("Art", "Type"),
        "dashboard.total": ("gesamt", "total"),
        "dashboard.open": (
            "Offene Überweisungen nach Partner und Stand",
            "Open referrals by partner and status",
        ),
        "dashboard.open.chart": (
            "Balkendiagramm: offene Überweisungen je ausführendem Partner, gestapelt nach Stand",
            "Bar chart: open referrals per performing partner, stacked by status",
        ),
        "dashboard.age": ("Alter offener Überweisungen", "Age of open referrals"),
        "dashboard.age.chart": (
            "Balkendiagramm: offene Überweisungen je ausführendem Partner,"
            " gestapelt nach Alter seit Eingang",
            "Bar chart: open referrals per performing partner, stacked by age since creation",
        ),
        "dashboard.age.under-7": ("unter 7 Tage", "under 7 days"),
        "dashboard.age.7-30": ("7 bis 30 Tage", "7 to 30 days"),
        "dashboard.age.31-90": ("31 bis 90 Tage", "31 to 90 days"),
        "dashboard.age.over-90": ("über 90 Tage", "over 90 days"),
        "dashboard.overdue": (
            "Überfällige Fristen nach Partner und Art",
            "Overdue deadlines by partner and type",
        ),
        "dashboard.overdue.chart": (
            "Balkendiagramm: überfällige Fristen je ausführendem Partner und Art",
            "Bar chart: overdue deadlines per performing partner and type",
        ),
        "dashboard.overdue.count": ("überfällig", "overdue"),
        "dashboard.throughput": (
            "Durchsatz der letzten 8 Kalenderwochen",
            "Throughput over the last 8 calendar weeks",
        ),
        "dashboard.throughput.chart": (
            "Säulendiagramm: angelegte und abgeschlossene Überweisungen je Kalenderwoche",
            "Column chart: referrals created and closed per calendar week",
        ),
        "dashboard.throughput.hint": (
            "Abgeschlossen zählt jeden Übergang in einen Endstand (abgeschlossen, gescheitert,"
            " abgelehnt, zurückgezogen, irrtümlich erfasst).",
            "Closed counts every move into a final status (completed, failed, rejected,"
            " cancelled, entered in error).",
        ),
        "dashboard.created": ("angelegt", "created"),
        "dashboard.closed": ("abgeschlossen", "closed"),
        "dashboard.week": ("Kalenderwoche", "Calendar week"),
        "dashboard.week.start": ("ab Montag", "from Monday"),
        "dashboard.week.short": ("KW {n}", "W{n}"),
    }
)


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


# ---------------------------------------------------------------------- charts

Translate = Callable[..., str]
WIDTH = 640
ROW = 28  # height of one bar row
BAR = 18  # thickness of a bar
LEGEND = 30  # height of the legend line
LEGEND_STEP = 125  # width of one legend entry


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    row: str = ""  # data-row / data-series / data-value, for a browser test
    series: str = ""
    value: int | None = None


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]


@dataclass(frozen=True)
class Row:
    """One bar of a horizontal chart: its label, its data-row key and its values."""

    label: str
    key: str
    values: dict[str, int]


def _legend(series: dict[str, tuple[str, str]]) -> tuple[list[Rect], list[Label]]:
    """Swatches with their names (series key -> (name, colour)) on one line."""
    rects, labels = [], []
    for i, (name, colour) in enumerate(series.values()):
        rects.append(Rect(i * LEGEND_STEP, 6, 14, 14, colour))
        labels.append(Label(i * LEGEND_STEP + 20, 18, name))
    return rects, labels


def _bars(
    chart_id: str,
    title: str,
    rows: list[Row],
    series: dict[str, tuple[str, str]],
    t: Translate,
    *,
    label_width: int = 150,
) -> Chart:
    """Horizontal bars, stacked by series, with the total at the end of each bar."""
    rects, labels = _legend(series) if len(series) > 1 else ([], [])
    top = LEGEND if len(series) > 1 else 4
    room = WIDTH - label_width - 50
    biggest = max((sum(r.values.values()) for r in rows), default=0)
    scale = room / biggest if biggest else 0.0
    for i, row in enumerate(rows):
        y = top + i * ROW
        labels.append(Label(label_width - 8, y + 14, row.label, "end"))
        x = float(label_width)
        for key, (_, colour) in series.items():
            value = row.values.get(key, 0)
            if value:
                width = round(value * scale, 1)
                rects.append(Rect(x, y, width, BAR, colour, row.key, key, value))
                x = round(x + width, 1)
        labels.append(Label(x + 6, y + 14, str(sum(row.values.values()))))
    if not rows:
        labels.append(Label(label_width, top + 14, t("dashboard.none")))
    return Chart(chart_id, title, WIDTH, top + max(len(rows), 1) * ROW + 4, rects, labels)


def _throughput_chart(weeks: list[Week], t: Translate) -> Chart:
    """Pairs of columns per week: created and closed."""
    series = {
        "created": (t("dashboard.created"), ACCENT),
        "closed": (t("dashboard.closed"), OK),
    }
    rects, labels = _legend(series)
    plot_top, plot_height, step, column = LEGEND + 20, 160, WIDTH // len(weeks), 26
    base = plot_top + plot_height
    biggest = max((max(w.created, w.closed) for w in weeks), default=0)
    scale = plot_height / biggest if biggest else 0.0
    rects.append(Rect(0, base, WIDTH, 1, MUTED))
    for i, week in enumerate(weeks):
        left = i * step + (step - 2 * column) / 2
        for j, (key, value) in enumerate((("created", week.created), ("closed", week.closed))):
            height = round(value * scale, 1)
            x = left + j * column
            rects.append(
                Rect(x, base - height, column - 2, height, series[key][1], week.label, key, value)
            )
            labels.append(Label(x + column / 2 - 1, base - height - 4, str(value), "middle"))
        name = t("dashboard.week.short", n=week.number)
        labels.append(Label(i * step + step / 2, base + 18, name, "middle"))
    return Chart(
        "chart-throughput", t("dashboard.throughput.chart"), WIDTH, base + 26, rects, labels
    )


def charts(figures: Backlog, t: Translate, lang: str = "de") -> dict[str, Chart]:
    """The four charts of the page, in the viewer's language."""
    names = figures.partner_names
    statuses = {s: (wording.label(lang, "status", s), STATUS_COLOURS[s]) for s in OPEN_STATUSES}
    ages = {a: (t("dashboard.age." + a), AGE_COLOURS[a]) for a in AGE_KEYS}
    overdue = {"count": (t("dashboard.overdue.count"), BAD)}
    return {
        "open": _bars(
            "chart-open",
            t("dashboard.open.chart"),
            [Row(names.get(p, p), p, counts) for p, counts in figures.open.items()],
            statuses,
            t,
        ),
        "age": _bars(
            "chart-age",
            t("dashboard.age.chart"),
            [Row(names.get(p, p), p, counts) for p, counts in figures.ages.items()],
            ages,
            t,
        ),
        "overdue": _bars(
            "chart-overdue",
            t("dashboard.overdue.chart"),
            [
                Row(
                    f"{_short(names.get(p, p))} · {_short(wording.label(lang, 'type', rt))}",
                    f"{p}/{rt}",
                    {"count": n},
                )
                for p, rt, n in figures.overdue
            ],
            overdue,
            t,
            label_width=300,
        ),
        "throughput": _throughput_chart(figures.weeks, t),
    }


def _short(text: str, most: int = 22) -> str:
    """A label cut to fit beside a bar (the table next to the chart has it in full)."""
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


# ---------------------------------------------------------------------- routes


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, staff: Staff = Depends(require(*ROLES))) -> Response:
    with viewing(request, staff, action="staff.dashboard_viewed") as session:
        figures = backlog(session, now=utcnow())
    lang = lang_of(request)

    def t(key: str, **values: object) -> str:
        return translate(key, lang, **values)

    return render(
        request,
        "dashboard.html",
        staff=staff,
        figures=figures,
        charts=charts(figures, t, lang),
        open_statuses=OPEN_STATUSES,
        age_keys=AGE_KEYS,
    )


@router.get("/dashboard.csv")
def dashboard_csv(
    request: Request, format: str = "", staff: Staff = Depends(require(*ROLES))
) -> Response:
    """The figures in words for people, or with ids (``?format=codes``) for scripts."""
    with viewing(request, staff, action="staff.dashboard_exported") as session:
        figures = backlog(session, now=utcnow())
    day = figures.now.astimezone(BERLIN).date().isoformat()
    codes = format == "codes"
    suffix = "-codes" if codes else ""
    return Response(
        as_csv(figures) if codes else as_labelled_csv(figures, lang_of(request)),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="talent-hub-backlog-{day}{suffix}.csv"'
        },
    )


@router.get("/dashboard.json")
def dashboard_json(request: Request, staff: Staff = Depends(require(*ROLES))) -> Response:
    with unit_of_work(request.app.state.session_factory) as session:
        figures = backlog(session, now=utcnow())
    return JSONResponse(as_json(figures))
