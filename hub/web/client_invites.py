"""Staff pages for Mein Verfahren: issue an access code for a client, print the letter,
see and revoke the codes issued.

The code appears exactly once, on the letter page that answers the POST; the hub keeps
only its hash. Issuing and revoking are audited under the caseworker's name.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.db import unit_of_work, utcnow
from hub.errors import NotFound
from hub.portal import invites
from hub.portal.letter import letter_html
from hub.portal.pages import notice_language
from hub.portal.words import LANGUAGES, Words
from hub.web.accounts import Staff
from hub.web.acting import may_see_person
from hub.web.i18n import add_words
from hub.web.pages import CASE_ROLES, PREFIX, posting

router = APIRouter(prefix=PREFIX, include_in_schema=False)

add_words(
    {
        "invite.title": ("Mein Verfahren", "Mein Verfahren (client view)"),
        "invite.text": (
            "Die Person kann ihr Verfahren selbst verfolgen. Der Zugangscode gilt einmal"
            " und 30 Tage; gedruckt wird er nur jetzt.",
            "The client can follow their own case. The access code works once and for 30"
            " days; it is printed only now.",
        ),
        "invite.language": ("Sprache des Briefs", "Language of the letter"),
        "invite.language_auto": ("wie in der Einwilligung", "as in the consent"),
        "invite.create": ("Zugangscode erstellen", "Create access code"),
        "invite.open": ("Offene Zugangscodes", "Open access codes"),
        "invite.until": ("gültig bis {day}", "valid until {day}"),
        "invite.revoke": ("Widerrufen", "Revoke"),
        "invite.none": ("Kein offener Zugangscode.", "No open access code."),
    }
)


@router.post("/people/{person_id}/invites", response_class=HTMLResponse)
def create_invite(
    request: Request,
    person_id: str,
    language: str = Form(""),
    staff: Staff = Depends(posting(*CASE_ROLES)),
) -> Response:
    """Issue a code and answer with the printable letter (its only appearance)."""
    settings = request.app.state.settings
    with unit_of_work(request.app.state.session_factory) as session:
        if not may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        chosen = language if language in LANGUAGES else None
        issued = invites.issue(
            session,
            person_id=person_id,
            by=staff.email,
            by_type="staff",
            now=utcnow(),
            language=chosen,
        )
        letter_language = chosen or notice_language(session, person_id) or "de"
    base = settings.client_view_url or str(request.base_url)
    return HTMLResponse(letter_html(issued, base_url=base, words=Words(letter_language)))


@router.post("/people/{person_id}/invites/{invite_id}/revoke")
def revoke_invite(
    request: Request,
    person_id: str,
    invite_id: str,
    staff: Staff = Depends(posting(*CASE_ROLES)),
) -> Response:
    """Revoke a code of this person and end the sessions it opened."""
    with unit_of_work(request.app.state.session_factory) as session:
        if not may_see_person(session, request, staff, person_id):
            raise NotFound(f"no person {person_id} in your purpose domains")
        found = [i for i in invites.invites_of(session, person_id) if i.id == invite_id]
        if not found:
            raise NotFound(f"no invite {invite_id} for {person_id}")
        invites.revoke(session, invite_id=invite_id, by=staff.email, by_type="staff", now=utcnow())
    return RedirectResponse(f"{PREFIX}/people/{person_id}", status_code=303)
