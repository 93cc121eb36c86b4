"""The GDPR Art. 15 access report: what the hub holds on a person, what it sent to whom,
when, and on which legal basis — as JSON for machines and as a German HTML page for people.
"""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.models import AuditRecord
from hub.audit.service import record as audit
from hub.consent.service import for_person
from hub.db import utcnow
from hub.errors import NotFound
from hub.people.models import Person, PersonReference
from hub.privacy.models import PersonKey
from hub.privacy.service import open_value
from hub.referrals.models import Referral
from hub.timeline.models import TimelineEntry

DELIVERY_ACTIONS = ("delivery.delivered", "delivery.inbox", "delivery.rejected")
# What a partner's API read records per person it returned (hub.api.deps.audit_read).
PARTNER_READ = "api.read"
# The German names of what a partner read, by route template.
READ_LABELS = {
    "/v1/referrals/{referral_id}": "Vermittlung",
    "/v1/referrals": "Liste der Vermittlungen",
    "/v1/inbox": "Posteingang",
    "/v1/people/{person_id}/timeline": "Zeitleiste",
    "/v1/people/{person_id}/consents": "Einwilligungen",
}


def export_person(session: Session, *, person_id: str, by: str) -> dict[str, Any]:
    """Everything the hub holds on the person, and every transfer about them."""
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    audit(
        session,
        actor_type="staff" if by.startswith("staff:") else "system",
        actor=by,
        action="person.exported",
        person_id=person_id,
    )
    erased = session.scalar(select(PersonKey.erased_at).where(PersonKey.person_id == person_id))
    return {
        "erstellt_am": utcnow().isoformat(),
        "geloescht_am": erased.isoformat() if erased else None,
        "person": _person(session, person),
        "vermittlungen": [
            _referral(r)
            for r in session.scalars(
                select(Referral)
                .where(Referral.person_id == person_id)
                .order_by(Referral.created_at)
            )
        ],
        "einwilligungen": [
            _consent(c, erased=erased is not None) for c in for_person(session, person_id=person_id)
        ],
        "uebermittlungen": _deliveries(session, person_id),
        "partner_zugriffe": _partner_reads(session, person_id),
        "zeitleiste_eintraege": len(
            list(
                session.scalars(
                    select(TimelineEntry.id).where(TimelineEntry.person_id == person_id)
                )
            )
        ),
    }


def _person(session: Session, person: Person) -> dict[str, Any]:
    refs = session.scalars(select(PersonReference).where(PersonReference.person_id == person.id))
    return {
        "pseudonym": person.id,
        "vorname": open_value(session, person.id, person.given_name),
        "nachname": open_value(session, person.id, person.family_name),
        "geburtsdatum": open_value(session, person.id, person.birth_date),
        "kennungen_der_partner": [{"partner": r.partner_id, "kennung": r.reference} for r in refs],
    }


def _referral(r: Referral) -> dict[str, Any]:
    return {
        "id": r.id,
        "art": r.type,
        "von": r.requester_id,
        "an": r.performer_id,
        "status": r.status,
        "fachstatus": r.business_status,
        "angelegt": r.created_at.isoformat(),
        "verlauf": [
            {
                "status": h.status,
                "fachstatus": h.business_status,
                "durch": h.set_by,
                "am": h.occurred_at.isoformat(),
            }
            for h in r.history
        ],
    }


def _consent(c: Any, *, erased: bool) -> dict[str, Any]:
    # Erasure deletes the person's consents; one recorded for the pseudonym afterwards still
    # must not bring free text into the report of an erased person.
    return {
        "zweck": c.purpose,
        "partner": c.partners,
        "erteilt_am": c.granted_on.isoformat(),
        "nachweis": None if erased else c.evidence_reference,
        "sprache": None if erased else c.notice_language,
        "widerrufen_am": c.withdrawn_at.isoformat() if c.withdrawn_at else None,
    }


def _deliveries(session: Session, person_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(AuditRecord)
        .where(AuditRecord.person_id == person_id, AuditRecord.action.in_(DELIVERY_ACTIONS))
        .order_by(AuditRecord.seq)
    )
    return [
        {
            "empfaenger": (rec.details or {}).get("recipient"),
            "am": rec.at.isoformat(),
            "rechtsgrundlage": (rec.details or {}).get("legal_basis"),
            "zweck": rec.purpose,
            "vorgang": rec.action.removeprefix("delivery."),
            "nachricht": (rec.details or {}).get("event_type", "").rsplit(".", 2)[-2],
            "vermittlung": (rec.details or {}).get("referral_id"),
            "datenfelder": (rec.details or {}).get("fields", []),
        }
        for rec in session.scalars(stmt)
    ]


def _partner_reads(session: Session, person_id: str) -> list[dict[str, Any]]:
    """Who of the partners read the person's data through the API, when, and which referral."""
    stmt = (
        select(AuditRecord)
        .where(AuditRecord.person_id == person_id, AuditRecord.action == PARTNER_READ)
        .order_by(AuditRecord.seq)
    )
    return [
        {
            "partner": rec.actor,
            "am": rec.at.isoformat(),
            "abfrage": READ_LABELS.get((rec.details or {}).get("route", ""), "Abfrage"),
            "vermittlungen": list((rec.details or {}).get("referrals", [])),
        }
        for rec in session.scalars(stmt)
    ]


def render_html(report: dict[str, Any]) -> str:
    """The report as a self-contained German HTML page (every value escaped)."""
    e = html.escape
    p = report["person"]
    rows = "".join(
        f"<tr><td>{e(str(d['am']))}</td><td>{e(str(d['empfaenger']))}</td>"
        f"<td>{e(str(d['rechtsgrundlage']))}</td><td>{e(str(d['zweck']))}</td>"
        f"<td>{e(', '.join(d['datenfelder']))}</td><td>{e(str(d['vorgang']))}</td></tr>"
        for d in report["uebermittlungen"]
    )
    reads = "".join(
        f"<tr><td>{e(str(z['am']))}</td><td>{e(str(z['partner']))}</td>"
        f"<td>{e(str(z['abfrage']))}</td><td>{e(', '.join(z['vermittlungen']) or '—')}</td></tr>"
        for z in report.get("partner_zugriffe", [])
    )
    refs = "".join(
        f"<li>{e(r['partner'])}: {e(r['kennung'])}</li>" for r in p["kennungen_der_partner"]
    )
    referrals = "".join(
        f"<li>{e(r['art'])}: {e(r['von'])} → {e(r['an'])}, Status {e(r['status'])}</li>"
        for r in report["vermittlungen"]
    )
    erased = (
        f"<p>Die personenbezogenen Daten wurden am {e(report['geloescht_am'])} gelöscht; "
        "es bleiben das Pseudonym, der Verlauf der Vermittlungen ohne Inhalte und der "
        "Nachweis der Übermittlungen.</p>\n"
        if report.get("geloescht_am")
        else ""
    )
    return f"""<!doctype html>
<html lang="de"><head><meta charset="utf-8"><title>Auskunft nach Art. 15 DSGVO</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#111}}
table{{border-collapse:collapse}}td,th{{border:1px solid #666;padding:.3rem .5rem}}</style>
</head><body>
<h1>Auskunft nach Art. 15 DSGVO</h1>
<p>Talent Hub des International Talent Center Duisburg, erstellt am {e(report["erstellt_am"])}.</p>
{erased}<h2>Gespeicherte Angaben</h2>
<p>Pseudonym {e(p["pseudonym"])}; Name {e(str(p["vorname"] or ""))} {e(str(p["nachname"] or ""))};
Geburtsdatum {e(str(p["geburtsdatum"] or "—"))}</p>
<h3>Kennungen der Partner</h3><ul>{refs or "<li>keine</li>"}</ul>
<h3>Vermittlungen</h3><ul>{referrals or "<li>keine</li>"}</ul>
<h2>Übermittlungen (an wen, wann, auf welcher Rechtsgrundlage)</h2>
<table><thead><tr><th>Zeitpunkt</th><th>Empfänger</th><th>Rechtsgrundlage</th><th>Zweck</th>
<th>Datenfelder</th><th>Vorgang</th></tr></thead><tbody>{rows}</tbody></table>
<h2>Abrufe durch Partner (wer, wann, welche Vermittlung)</h2>
<table><thead><tr><th>Zeitpunkt</th><th>Partner</th><th>Abgerufen</th><th>Vermittlung</th>
</tr></thead><tbody>{reads or '<tr><td colspan="4">keine</td></tr>'}</tbody></table>
</body></html>
"""
