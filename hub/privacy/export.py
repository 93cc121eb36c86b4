"""The GDPR Art. 15 access report: everything the hub holds on a person, decrypted with the
person's key, what it sent to whom, when and on which basis, and the Art. 15(1) information.

``export_person`` collects it as a dict with English machine keys and the catalogue's ids
(the JSON for machines); ``hub.privacy.report.render_html`` turns it into the page the person
reads. After an erasure nothing decryptable is left: the report then holds the pseudonym,
the history without contents and the proof of the transfers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.models import AuditRecord
from hub.audit.service import record as audit
from hub.consent.models import Consent
from hub.consent.service import for_person
from hub.crypto.fields import open_event, open_value
from hub.crypto.models import PersonKey
from hub.db import utcnow
from hub.deadlines.models import ClockInstance
from hub.errors import NotFound
from hub.partners.models import Partner
from hub.people.models import Person, PersonReference
from hub.policy.model import Policy, Route
from hub.policy.parties import route_between
from hub.policy.projection import shared_status
from hub.referrals.models import Referral, StaffNote, StatusHistory
from hub.routing.models import RoutingHold
from hub.settings import Settings
from hub.timeline.models import TimelineEntry
from schemas.cloudevents import TYPE_PREFIX, EventType
from schemas.labels import DEFAULT_LANGUAGE, pick_language

DELIVERY_ACTIONS = ("delivery.delivered", "delivery.inbox", "delivery.rejected")
# What a partner's API read records per person it returned (hub.api.deps.audit_read).
PARTNER_READ = "api.read"
# What the staff UI records when a caseworker looks at the person (hub.web.pages.viewing).
STAFF_VIEW = "staff."
# What a partner read, by route template: the report names it in the reader's language.
READS = {
    "/v1/referrals/{referral_id}": "referral",
    "/v1/referrals": "referrals",
    "/v1/inbox": "inbox",
    "/v1/people/{person_id}/timeline": "timeline",
    "/v1/people/{person_id}/consents": "consents",
}


def export_person(
    session: Session,
    *,
    person_id: str,
    by: str,
    policy: Policy,
    settings: Settings | None = None,
    language: str | None = None,
) -> dict[str, Any]:
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
    partners = {p.id: p for p in session.scalars(select(Partner))}
    consents = for_person(session, person_id=person_id)
    referrals = list(
        session.scalars(
            select(Referral).where(Referral.person_id == person_id).order_by(Referral.created_at)
        )
    )
    report: dict[str, Any] = {
        "generated_at": _at(utcnow()),
        "language": pick_language(language) or _notice_language(consents) or DEFAULT_LANGUAGE,
        "erased_at": _at(erased),
        "controller": _controller(settings),
        "person": _person(session, person, partners),
        "referrals": [_referral(session, r, policy, partners) for r in referrals],
        "timeline": _timeline(session, person_id, partners),
        "consents": [_consent(c, partners, erased=erased is not None) for c in consents],
        "holds": _holds(session, person_id, partners),
        "deliveries": _deliveries(session, person_id, policy, partners),
        "partner_reads": _partner_reads(session, person_id, partners),
        "staff_views": _staff_views(session, person_id),
    }
    report["recipients"] = _recipients(report, partners)
    report["purposes"] = _purposes(report)
    return report


def _at(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _notice_language(consents: list[Consent]) -> str | None:
    """The language the person read the newest consent notice in, if the report has it."""
    return pick_language(consents[0].notice_language) if consents else None


def _controller(settings: Settings | None) -> dict[str, str]:
    """The controller and its data protection officer, as the settings name them."""

    def value(name: str) -> str:
        if settings is not None:
            return str(getattr(settings, name))
        return str(Settings.model_fields[name].default)

    return {
        "name": value("controller_name"),
        "address": value("controller_address"),
        "contact": value("controller_contact"),
        "dpo_contact": value("dpo_contact"),
    }


def _partner(partners: dict[str, Partner], partner_id: str | None) -> dict[str, Any]:
    """A partner by id, display name and kind (the id alone for one no longer registered)."""
    found = partners.get(partner_id or "")
    return {
        "id": partner_id,
        "name": found.name if found else partner_id,
        "kind": found.kind if found else None,
    }


def _person(session: Session, person: Person, partners: dict[str, Partner]) -> dict[str, Any]:
    refs = session.scalars(
        select(PersonReference)
        .where(PersonReference.person_id == person.id)
        .order_by(PersonReference.id)
    )
    return {
        "pseudonym": person.id,
        "given_name": open_value(session, person.id, person.given_name),
        "family_name": open_value(session, person.id, person.family_name),
        "birth_date": open_value(session, person.id, person.birth_date),
        "created_at": _at(person.created_at),
        "partner_references": [
            {
                "partner": _partner(partners, r.partner_id),
                "reference": r.reference,
                "created_at": _at(r.created_at),
            }
            for r in refs
        ],
    }


def _referral(
    session: Session, r: Referral, policy: Policy, partners: dict[str, Partner]
) -> dict[str, Any]:
    route = _route(session, policy, r)
    payload = open_event(session, r.person_id, {"payload": r.payload or {}})["payload"]
    return {
        "id": r.id,
        "type": r.type,
        "purpose": route.purpose if route else None,
        "legal_basis": route.legal_basis if route else None,
        "requester": _partner(partners, r.requester_id),
        "performer": _partner(partners, r.performer_id),
        "status": r.status,
        "business_status": r.business_status,
        "created_at": _at(r.created_at),
        "updated_at": _at(r.updated_at),
        "shredded_at": _at(r.shredded_at),
        "retention_days": route.retention_days if route else None,
        "idle_days": route.idle_days if route else None,
        # The requester sent the payload: it is the source of these data (Art. 15(1)(g)).
        "payload": [{"field": k, "value": v} for k, v in payload.items()],
        "history": [_change(session, r.person_id, h, partners) for h in r.history],
        "staff_notes": _staff_notes(session, r.id),
        "clocks": _clocks(session, r.id),
    }


def _route(session: Session, policy: Policy, r: Referral) -> Route | None:
    """The route policy's terms for this referral's flow (None when it has none any more)."""
    return route_between(
        session, policy, requester=r.requester_id, performer=r.performer_id, type_=r.type
    )


def _change(
    session: Session, person_id: str, h: StatusHistory, partners: dict[str, Partner]
) -> dict[str, Any]:
    return {
        "status": h.status,
        "business_status": h.business_status,
        "reason": h.reason,
        "outcome": h.outcome,
        "note": open_value(session, person_id, h.note),
        "set_by": _partner(partners, h.set_by),
        "occurred_at": _at(h.occurred_at),
        "event_id": h.event_id,
    }


def _staff_notes(session: Session, referral_id: str) -> list[dict[str, Any]]:
    stmt = select(StaffNote).where(StaffNote.referral_id == referral_id).order_by(StaffNote.id)
    # The author stays out: the person learns that Talent Center staff wrote the note, not
    # which employee (the employee's data are not the person's).
    return [
        {
            "purpose": n.purpose,
            "text": open_value(session, n.person_id, n.text),
            "created_at": _at(n.created_at),
        }
        for n in session.scalars(stmt)
    ]


def _clocks(session: Session, referral_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(ClockInstance)
        .where(ClockInstance.referral_id == referral_id)
        .order_by(ClockInstance.id)
    )
    return [
        {
            "name": c.name,
            "state": c.state,
            "started_at": _at(c.started_at),
            "due_at": _at(c.due_at),
        }
        for c in session.scalars(stmt)
    ]


def _timeline(
    session: Session, person_id: str, partners: dict[str, Partner]
) -> list[dict[str, Any]]:
    stmt = (
        select(TimelineEntry)
        .where(TimelineEntry.person_id == person_id)
        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
    )
    return [
        {
            "occurred_at": _at(e.occurred_at),
            "event": _message(e.event_type),
            "referral_id": e.referral_id,
            "referral_type": e.referral_type,
            "source": _partner(partners, e.source_partner),
            "status": e.status,
            "business_status": e.business_status,
            "purpose": e.purpose,
            "legal_basis": e.legal_basis,
        }
        for e in session.scalars(stmt)
    ]


def _message(event_type: str | None) -> str:
    """``referral.requested`` for ``de.duisburg.talenthub.referral.requested.v1``."""
    name = (event_type or "").removeprefix(TYPE_PREFIX)
    return name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].startswith("v") else name


def _consent(c: Consent, partners: dict[str, Partner], *, erased: bool) -> dict[str, Any]:
    # Erasure deletes the person's consents; one recorded for the pseudonym afterwards still
    # must not bring free text into the report of an erased person.
    return {
        "purpose": c.purpose,
        "partners": [_partner(partners, p) for p in c.partners],
        "shared_with_purposes": list(c.shared_with_purposes or []),
        "granted_on": c.granted_on.isoformat(),
        "recorded_by": _partner(partners, c.recorded_by),
        "evidence": None if erased else c.evidence_reference,
        "notice_language": None if erased else c.notice_language,
        "withdrawn_at": _at(c.withdrawn_at),
    }


def _holds(session: Session, person_id: str, partners: dict[str, Partner]) -> list[dict[str, Any]]:
    """Messages about the person the hub kept back, e.g. while a consent was missing."""
    stmt = select(RoutingHold).where(RoutingHold.person_id == person_id).order_by(RoutingHold.id)
    return [
        {
            "recipient": _partner(partners, h.recipient),
            "message": _message(h.event_type),
            "referral_id": h.referral_id,
            "reason": h.reason,
            "held_at": _at(h.held_at),
            "released_at": _at(h.released_at),
        }
        for h in session.scalars(stmt)
    ]


def _deliveries(
    session: Session, person_id: str, policy: Policy, partners: dict[str, Partner]
) -> list[dict[str, Any]]:
    stmt = (
        select(AuditRecord)
        .where(AuditRecord.person_id == person_id, AuditRecord.action.in_(DELIVERY_ACTIONS))
        .order_by(AuditRecord.seq)
    )
    out = []
    for rec in session.scalars(stmt):
        details = rec.details or {}
        entry = {
            "at": _at(rec.at),
            "recipient": _partner(partners, details.get("recipient")),
            "legal_basis": details.get("legal_basis"),
            "purpose": rec.purpose,
            "outcome": rec.action.removeprefix("delivery."),
            "message": _message(details.get("event_type")),
            "referral_id": details.get("referral_id"),
            "fields": list(details.get("fields", [])),
        }
        if details.get("event_type") == EventType.REFERRAL_STATUS_CHANGED:
            entry["status_change"] = _status_sent(session, policy, details)
        out.append(entry)
    return out


def _status_sent(session: Session, policy: Policy, details: dict[str, Any]) -> dict[str, Any]:
    """What of a status change reached the recipient: the route's share for them decides
    whether the business code, outcome and note travelled (hub.policy.projection)."""
    change = session.scalar(
        select(StatusHistory).where(StatusHistory.event_id == details.get("event_id"))
    )
    if change is None:
        return {}
    route = _route(session, policy, change.referral)
    share = route.status_share(str(details.get("recipient"))) if route else None
    full = {
        "status": change.status,
        "reason": change.reason,
        "business_status": change.business_status,
        "outcome": change.outcome,
        "note": change.note,
    }
    sent = shared_status({k: v for k, v in full.items() if v is not None}, share) if share else {}
    return {
        "status": sent.get("status", change.status),
        "reason": sent.get("reason"),
        "business_status": sent.get("business_status"),
        "outcome": sent.get("outcome"),
        "note_included": "note" in sent,
    }


def _partner_reads(
    session: Session, person_id: str, partners: dict[str, Partner]
) -> list[dict[str, Any]]:
    """Who of the partners read the person's data through the API, when, and which referral."""
    stmt = (
        select(AuditRecord)
        .where(AuditRecord.person_id == person_id, AuditRecord.action == PARTNER_READ)
        .order_by(AuditRecord.seq)
    )
    return [
        {
            "partner": _partner(partners, rec.actor),
            "at": _at(rec.at),
            "route": (rec.details or {}).get("route", ""),
            "read": READS.get((rec.details or {}).get("route", ""), "other"),
            "referrals": list((rec.details or {}).get("referrals", [])),
        }
        for rec in session.scalars(stmt)
    ]


def _staff_views(session: Session, person_id: str) -> list[dict[str, Any]]:
    """When Talent Center staff looked at the person's data, and for which purpose."""
    stmt = (
        select(AuditRecord)
        .where(AuditRecord.person_id == person_id, AuditRecord.action.startswith(STAFF_VIEW))
        .order_by(AuditRecord.seq)
    )
    return [
        {"at": _at(rec.at), "action": rec.action, "purpose": rec.purpose}
        for rec in session.scalars(stmt)
    ]


def _recipients(report: dict[str, Any], partners: dict[str, Partner]) -> list[dict[str, Any]]:
    """Every partner that received or read the person's data (Art. 15(1)(c))."""
    ids = [d["recipient"]["id"] for d in report["deliveries"] if d["outcome"] != "rejected"]
    ids += [z["partner"]["id"] for z in report["partner_reads"]]
    return [_partner(partners, pid) for pid in dict.fromkeys(ids) if pid]


def _purposes(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each purpose the data serve, with its legal bases (Art. 15(1)(a))."""
    bases: dict[str, list[str]] = {}
    for r in report["referrals"]:
        if r["purpose"]:
            bases.setdefault(r["purpose"], [])
            if r["legal_basis"] and r["legal_basis"] not in bases[r["purpose"]]:
                bases[r["purpose"]].append(r["legal_basis"])
    for c in report["consents"]:
        bases.setdefault(c["purpose"], [])
        if "consent" not in bases[c["purpose"]]:
            bases[c["purpose"]].append("consent")
    return [{"purpose": p, "legal_bases": b} for p, b in bases.items()]
