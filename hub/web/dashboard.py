"""Staff pages: the backlog dashboard, its CSV export and its JSON view (totals only, no
personal data). The figures are ``hub.web.backlog``, the charts ``hub.web.backlog_charts``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from hub.db import unit_of_work, utcnow
from hub.web.accounts import Staff
from hub.web.backlog import AGE_KEYS, OPEN_STATUSES, as_csv, as_json, as_labelled_csv, backlog
from hub.web.backlog_charts import charts
from hub.web.i18n import add_words, translate
from hub.web.pages import PREFIX, lang_of, render, require, viewing
from hub.web.wording import BERLIN

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ROLES = ("caseworker", "team_lead", "admin")

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
