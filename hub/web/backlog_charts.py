"""The backlog dashboard's bar charts as plain SVG shapes, drawn from the figures.

Colours are those of hub.css with 4.5:1 contrast; every chart has the same numbers in a
table next to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hub.web import wording
from hub.web.backlog import AGE_KEYS, OPEN_STATUSES, Backlog, Week

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
