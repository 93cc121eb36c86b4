"""Staff page of the audit trail: filtered records and a verification of the whole log."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit.models import AuditRecord
from hub.audit.verify import VerifyReport, verify
from hub.partners.models import Partner
from hub.web.accounts import Staff
from hub.web.audit_words import ACTIONS, action_name, sentence
from hub.web.operations import (
    AUDIT_PAGE,
    AUDIT_ROLES,
    PROBLEMS_SHOWN,
)
from hub.web.pages import (
    PREFIX,
    audit_staff,
    lang_of,
    partner_names,
    posting,
    render,
    require,
    viewing,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's query: one person, one actor, an action (a named one exactly, any
    other text as a prefix), and the keyset position."""

    person: str = ""
    prefix: str = ""
    actor: str = ""
    before: int | None = None

    def details(self) -> dict[str, Any]:
        found = {"action_prefix": self.prefix or None, "before": self.before}
        return found | ({"actor": self.actor} if self.actor else {})

    def query(self, **extra: Any) -> str:
        pairs = {"person": self.person, "actor": self.actor, "action": self.prefix, **extra}
        return urlencode({k: v for k, v in pairs.items() if v})


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    person: str = "",
    action: str = "",
    actor: str = "",
    before: str = "",
    staff: Staff = Depends(require(*AUDIT_ROLES)),
) -> Response:
    query = AuditFilter(
        person=person.strip()[:70],
        prefix=action.strip()[:64],
        actor=actor.strip()[:128],
        before=int(before) if before.isascii() and before.isdigit() else None,
    )
    return _audit_view(request, staff, query, report=None)


@router.post("/audit/verify", response_class=HTMLResponse)
def verify_chain(request: Request, staff: Staff = Depends(posting(*AUDIT_ROLES))) -> Response:
    with request.app.state.session_factory() as session:
        report = verify(session)
    return _audit_view(request, staff, AuditFilter(), report=report)


def _audit_view(
    request: Request, staff: Staff, query: AuditFilter, report: VerifyReport | None
) -> Response:
    with viewing(
        request,
        staff,
        action="staff.audit_viewed",
        person_id=query.person or None,
        details=query.details(),
    ) as session:
        if report is not None:
            audit_staff(
                session,
                staff,
                "staff.audit_verified",
                details={
                    "ok": report.ok,
                    "checked": report.checked,
                    "problems": len(report.problems),
                },
            )
        rows = _audit_records(session, query)
        partners = list(session.scalars(select(Partner).order_by(Partner.id)))
    lang, names = lang_of(request), partner_names(request)
    for row in rows:
        row["sentence"] = sentence(
            action=row["action"],
            actor_type=row["actor_type"],
            actor=row["actor"],
            details=row["raw"],
            lang=lang,
            partner_name=names,
        )
    older = query.query(before=rows[AUDIT_PAGE - 1]["seq"]) if len(rows) > AUDIT_PAGE else None
    return render(
        request,
        "audit.html",
        staff=staff,
        records=rows[:AUDIT_PAGE],
        query=query,
        older=older,
        newest=query.query() if query.before is not None else None,
        report=report,
        actions={a: action_name(a, lang) for a in ACTIONS},
        partners=partners,
        problems=report.problems[:PROBLEMS_SHOWN] if report else [],
    )


def _audit_records(session: Session, query: AuditFilter) -> list[dict[str, Any]]:
    """One page and one record more (to know whether an older page exists), newest first."""
    stmt = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(AUDIT_PAGE + 1)
    if query.person:
        stmt = stmt.where(AuditRecord.person_id == query.person)
    if query.prefix in ACTIONS:
        stmt = stmt.where(AuditRecord.action == query.prefix)
    elif query.prefix:
        stmt = stmt.where(AuditRecord.action.startswith(query.prefix, autoescape=True))
    if query.actor:
        stmt = stmt.where(AuditRecord.actor == query.actor)
    if query.before is not None:
        stmt = stmt.where(AuditRecord.seq < query.before)
    return [_audit_row(entry) for entry in session.scalars(stmt)]


def _audit_row(entry: AuditRecord) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor_type": entry.actor_type,
        "actor": entry.actor,
        "action": entry.action,
        "person_id": entry.person_id,
        "purpose": entry.purpose,
        "raw": entry.details or {},
        "details": json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
        if entry.details
        else "",
    }
