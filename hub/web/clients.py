"""Staff pages: client search and the client's timeline across partners.

Each handler parses, calls services, and renders; purpose separation is the timeline
service's, the same the partner API uses.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.crypto.fields import open_value
from hub.db import utcnow
from hub.errors import NotFound
from hub.partners.models import Partner
from hub.people import visibility
from hub.people.models import Person, PersonReference
from hub.people.names import parse_day
from hub.portal.invites import invites_of, usable
from hub.portal.words import LANGUAGES, fixed_texts
from hub.timeline.models import TimelineEntry
from hub.timeline.service import fold_deliveries, timeline_for_staff, visible_purposes
from hub.web import accounts
from hub.web.accounts import Staff
from hub.web.acting import may_see_person, types_staff_may_request
from hub.web.i18n import add_words, translate
from hub.web.pages import (
    CASE_ROLES,
    PREFIX,
    audit_staff,
    lang_of,
    render,
    require,
    viewing,
)
from hub.web.person_summary import open_referrals
from schemas.cloudevents import TYPE_PREFIX
from schemas.labels import label as catalogue_label
from schemas.lifecycle import ACTIVE

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Timeline entries a page shows at first, per "show more", and at most (then: filter).
TIMELINE_PAGE = 500
TIMELINE_MOST = 5_000


# ---------------------------------------------------------------------- search


@router.get("/", response_class=HTMLResponse)
def home(request: Request, staff: Staff = Depends(require(*accounts.ROLES))) -> Response:
    if staff.role in CASE_ROLES:
        return RedirectResponse(f"{PREFIX}/search", status_code=303)
    target = {"dpo": "audit", "admin": "partners"}.get(staff.role, "dashboard")
    return RedirectResponse(f"{PREFIX}/{target}", status_code=303)


add_words(
    {
        "search.query_any": (
            "Name, Geburtsdatum, Hub-Kennung oder Partner-Aktenzeichen",
            "Name, birth date, hub id or partner reference",
        ),
        "search.hint_any": (
            "z. B. „Müller 12.04.1990“, „Olena Shevchenko“, p_… oder eine Matrikelnummer",
            "e.g. “Müller 12.04.1990”, “Olena Shevchenko”, p_… or a Matrikelnummer",
        ),
        "search.by.hub": ("Hub-Kennung", "hub id"),
        "search.by.name": ("Name", "name"),
        "search.by.sound": ("ähnlich klingenden Namen", "similar-sounding name"),
        "search.by.reference": ("Aktenzeichen von {partner}", "reference of {partner}"),
        "search.unnamed": ("ohne Namen", "no name"),
        "search.born": ("geboren", "born"),
        "search.known_to": ("bekannt bei", "known to"),
        "search.open": ("offene Überweisungen", "open referrals"),
        "search.none_open": ("keine offenen Überweisungen", "no open referrals"),
    }
)


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, q: str = "", staff: Staff = Depends(require(*CASE_ROLES))) -> Response:
    query = q.strip()[:100]
    results: list[dict[str, Any]] = []
    if query:
        # The audit keeps the kind of query, never its text: it may be a name.
        details = {"kind": visibility.query_kind(query)}
        with viewing(request, staff, action="staff.person_search", details=details) as session:
            results = _find_people(session, request, staff, query)
    return render(request, "search.html", staff=staff, q=query, results=results)


def _find_people(
    session: Session, request: Request, staff: Staff, query: str
) -> list[dict[str, Any]]:
    found = visibility.find_people(
        session, query=query, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )
    names = dict(session.execute(select(Partner.id, Partner.name)).tuples().all())
    hits = []
    for person_id, matched_by in found:
        hits.append(_hit(session, request, staff, person_id, matched_by, names))
        # What a hit shows (name, birth date, partners, referrals) is a view of the person.
        audit_staff(
            session,
            staff,
            "staff.search_hit_viewed",
            person_id=person_id,
            details={"matched_by": matched_by if matched_by in _HOW else "reference"},
        )
    return hits


_HOW = (visibility.BY_ID, visibility.BY_NAME, visibility.BY_SOUND)


def _hit(
    session: Session,
    request: Request,
    staff: Staff,
    person_id: str,
    matched_by: str,
    partner_names: dict[str, str],
) -> dict[str, Any]:
    lang = lang_of(request)
    person = session.get(Person, person_id)
    name = born = None
    if person is not None:
        given = open_value(session, person_id, person.given_name)
        family = open_value(session, person_id, person.family_name)
        name = " ".join(v for v in (given, family) if v) or None
        born = parse_day(open_value(session, person_id, person.birth_date) or "")
    referrals = visibility.visible_referrals(
        session, person_id=person_id, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )
    knowing = set(
        session.scalars(
            select(PersonReference.partner_id).where(PersonReference.person_id == person_id)
        )
    )
    knowing |= {p for r in referrals for p in (r.requester_id, r.performer_id)}
    active = {s.value for s in ACTIVE}
    return {
        "id": person_id,
        "name": name,
        "born": born.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d") if born else None,
        "matched_by": _matched_by(matched_by, partner_names, lang),
        "partners": sorted(partner_names.get(p, p) for p in knowing),
        "open": [
            {
                "id": r.id,
                "type": catalogue_label(lang, f"type.{r.type}", r.type),
                "status": catalogue_label(lang, f"status.{r.status}", r.status),
            }
            for r in referrals
            if r.status in active
        ],
    }


def _matched_by(matched_by: str, partner_names: dict[str, str], lang: str) -> str:
    if matched_by in _HOW:
        return translate(f"search.by.{matched_by}", lang)
    partner = partner_names.get(matched_by, matched_by)
    return translate("search.by.reference", lang, partner=partner)


# ---------------------------------------------------------------------- timeline


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request,
    person_id: str,
    order: str = "desc",
    partner: str = "",
    type: str = "",
    purpose: str = "",
    shown: int = TIMELINE_PAGE,
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    filters, shown = _timeline_filters(order, partner, type, purpose, shown)
    return _timeline(request, staff, person_id, filters, shown, "person.html")


@router.get("/people/{person_id}/entries", response_class=HTMLResponse)
def person_entries(
    request: Request,
    person_id: str,
    order: str = "desc",
    partner: str = "",
    type: str = "",
    purpose: str = "",
    shown: int = TIMELINE_PAGE,
    staff: Staff = Depends(require(*CASE_ROLES)),
) -> Response:
    """The entry list alone, polled by the page so new events appear without a reload."""
    filters, shown = _timeline_filters(order, partner, type, purpose, shown)
    return _timeline(request, staff, person_id, filters, shown, "_entries.html")


def _timeline_filters(
    order: str, partner: str, event_type: str, purpose: str, shown: int
) -> tuple[dict[str, str], int]:
    """The page's query, normalised (``shown`` in it only past the first page), and how
    many entries to show."""
    shown = min(max(shown, TIMELINE_PAGE), TIMELINE_MOST)
    filters = {
        "order": "asc" if order == "asc" else "desc",
        "partner": partner,
        "type": event_type,
        "purpose": purpose,
        "shown": str(shown) if shown > TIMELINE_PAGE else "",
    }
    return filters, shown


def _timeline(
    request: Request,
    staff: Staff,
    person_id: str,
    filters: dict[str, str],
    shown: int,
    template: str,
) -> Response:
    purpose = filters["purpose"]
    with viewing(
        request,
        staff,
        action="staff.timeline_viewed",
        person_id=person_id,
        purpose=purpose or None,
        details={"purposes": sorted(staff.purposes)},
    ) as session:
        if not may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        entries = timeline_for_staff(
            session,
            person_id=person_id,
            purposes=staff.purposes,
            partner=filters["partner"] or None,
            event_type=filters["type"] or None,
            purpose=purpose or None,
            newest_first=filters["order"] == "desc",
            limit=shown + 1,  # one more tells whether there is more
        )
        more = len(entries) > shown
        context: dict[str, Any] = {
            "person_id": person_id,
            "entries": [
                _entry_view(f.entry) | {"deliveries": [_entry_view(d) for d in f.deliveries]}
                for f in fold_deliveries(entries[:shown])
            ],
            "filters": filters,
            "query": _query(filters),
            "shown": shown,
            "more_query": _query(filters | {"shown": str(shown + TIMELINE_PAGE)})
            if more and shown < TIMELINE_MOST
            else None,
            "more": more,
        }
        if template == "person.html":
            context |= _person_context(session, request, staff, person_id)
    return render(request, template, staff=staff, **context)


def _person_context(
    session: Session, request: Request, staff: Staff, person_id: str
) -> dict[str, Any]:
    person = session.get(Person, person_id)
    visible = visible_purposes(session, person_id=person_id, purposes=staff.purposes)
    refs = visibility.visible_referrals(
        session, person_id=person_id, purposes=staff.purposes, catalogue=request.app.state.catalogue
    )
    partners = list(session.scalars(select(Partner).order_by(Partner.id)))
    name = None
    if person is not None:
        given = open_value(session, person_id, person.given_name)
        family = open_value(session, person_id, person.family_name)
        name = " ".join(v for v in (given, family) if v) or None
    return {
        "name": name,
        "referrals": refs,
        "summary": open_referrals(
            session,
            refs,
            catalogue=request.app.state.catalogue,
            settings=request.app.state.settings,
            now=utcnow(),
        ),
        "partners": partners,
        "event_types": {f"{TYPE_PREFIX}{kind}.v1": f"event.{kind}" for kind in _EVENT_KINDS},
        "purposes": sorted(visible),
        "new_types": types_staff_may_request(session, request, staff),
        "client_view": request.app.state.settings.client_view_enabled,
        "invites": [i for i in invites_of(session, person_id) if usable(i, utcnow())]
        if request.app.state.settings.client_view_enabled
        else [],
        "invite_languages": [(c, fixed_texts(c).get("language.name", c)) for c in LANGUAGES],
    }


_EVENT_KINDS = (
    "referral.requested",
    "referral.status-changed",
    "referral.deadline-due",
    "referral.delivered",
    "referral.delivery-failed",
    "consent.granted",
    "consent.withdrawn",
    "person.erased",
)


def _entry_view(entry: TimelineEntry) -> dict[str, Any]:
    short = entry.event_type.removeprefix(TYPE_PREFIX).removesuffix(".v1")
    return {
        "id": entry.id,
        "kind": short,
        "referral_id": entry.referral_id,
        "referral_type": entry.referral_type,
        "source": entry.source_partner,
        "status": entry.status,
        "business_status": entry.business_status,
        "purpose": entry.purpose,
        "legal_basis": entry.legal_basis,
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
    }


def _query(filters: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
