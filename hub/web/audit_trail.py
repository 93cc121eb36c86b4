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
from hub.web.accounts import Staff
from hub.web.operations import (
    AUDIT_PAGE,
    AUDIT_ROLES,
    PROBLEMS_SHOWN,
)
from hub.web.pages import PREFIX, audit_staff, posting, render, require, viewing

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------------- audit trail


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's query: one person, an action prefix, and the keyset position."""

    person: str = ""
    prefix: str = ""
    before: int | None = None

    def details(self) -> dict[str, Any]:
        return {"action_prefix": self.prefix or None, "before": self.before}

    def query(self, **extra: Any) -> str:
        pairs = {"person": self.person, "action": self.prefix, **extra}
        return urlencode({k: v for k, v in pairs.items() if v})


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    person: str = "",
    action: str = "",
    before: str = "",
    staff: Staff = Depends(require(*AUDIT_ROLES)),
) -> Response:
    query = AuditFilter(
        person=person.strip()[:70],
        prefix=action.strip()[:64],
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
        problems=report.problems[:PROBLEMS_SHOWN] if report else [],
    )


def _audit_records(session: Session, query: AuditFilter) -> list[dict[str, Any]]:
    """One page and one record more (to know whether an older page exists), newest first."""
    stmt = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(AUDIT_PAGE + 1)
    if query.person:
        stmt = stmt.where(AuditRecord.person_id == query.person)
    if query.prefix:
        stmt = stmt.where(AuditRecord.action.startswith(query.prefix, autoescape=True))
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
        "details": json.dumps(entry.details, ensure_ascii=False, sort_keys=True)
        if entry.details
        else "",
    }
