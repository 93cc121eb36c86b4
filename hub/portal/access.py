"""Who used the client's data: every partner read and staff view, from the audit log.

Each entry names the organisation and the role, never a staff member: the audit record's
actor is a staff e-mail address or a partner id, shown here only as "Talent Center staff
(case work)" or the partner's name. With each entry goes its place in the Merkle tree, so
that the client can fetch an inclusion proof against the newest signed checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.audit.keys import published_keys
from hub.audit.models import AuditCheckpoint, AuditRecord
from hub.audit.verify import prove
from hub.policy.model import Policy
from hub.policy.parties import route_between
from hub.portal.words import Words, isolate
from hub.referrals.models import Referral
from hub.web.models import StaffAccount
from schemas.catalogue import Catalogue

#: Partner reads (hub.api.deps.audit_read) and what the staff UI records as a view.
READ = "api.read"
VIEWS = {
    "staff.timeline_viewed": "access.what_viewed",
    "staff.referral_viewed": "access.what_viewed",
    "staff.search_hit_viewed": "access.what_searched",
}
#: The newest entries shown; the Art. 15 report has them all.
LIMIT = 200


@dataclass(frozen=True)
class Access:
    """One use of the client's data, in words."""

    leaf_index: int | None
    provable: bool
    at: datetime
    who: str
    what: str
    cases: str
    purpose: str
    basis: str


def accesses(
    session: Session,
    person_id: str,
    *,
    words: Words,
    names: dict[str, str],
    catalogue: Catalogue,
    policy: Policy,
) -> list[Access]:
    """The person's partner reads and staff views, newest first."""
    rows = session.scalars(
        select(AuditRecord)
        .where(
            AuditRecord.person_id == person_id,
            or_(AuditRecord.action == READ, AuditRecord.action.in_(VIEWS)),
        )
        .order_by(AuditRecord.seq.desc())
        .limit(LIMIT)
    ).all()
    signed = (
        session.scalar(
            select(AuditCheckpoint.tree_size).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
        )
        or 0
    )
    referrals = {
        r.id: r for r in session.scalars(select(Referral).where(Referral.person_id == person_id))
    }
    roles = _roles(session, {r.actor for r in rows if r.actor_type == "staff"})
    found = []
    for rec in rows:
        details = rec.details or {}
        ids = list(details.get("referrals") or [])
        if details.get("referral_id"):
            ids.append(details["referral_id"])
        cases = [referrals[i] for i in ids if i in referrals]
        if rec.action == READ:
            who = isolate(names.get(rec.actor, rec.actor))
            what = words.t("access.what_read")
            purpose, basis = _partner_terms(session, cases, words, catalogue, policy)
        else:
            role = roles.get(rec.actor, "unknown")
            who = words.t("access.staff", role=words.t(f"access.role.{role}"))
            what = words.t(VIEWS[rec.action])
            purposes = [rec.purpose] if rec.purpose else list(details.get("purposes") or [])
            purpose = ", ".join(words.label("purpose", p) for p in purposes)
            basis = _staff_basis(rec.purpose, catalogue, words)
        if cases:
            case_words = ", ".join(dict.fromkeys(words.label("type", c.type) for c in cases))
        elif rec.action == "staff.timeline_viewed":
            case_words = words.t("access.all_cases")
        else:
            case_words = words.t("access.no_case")
        found.append(
            Access(
                leaf_index=rec.leaf_index,
                provable=rec.leaf_index is not None and rec.leaf_index < signed,
                at=rec.at,
                who=who,
                what=what,
                cases=case_words,
                purpose=purpose,
                basis=basis,
            )
        )
    return found


class NotTheirs(LookupError):
    """No entry of this person has the leaf index (or it is the person's own view)."""


#: Leaf indexes beyond a signed 64-bit column name no entry (and the database refuses them).
MAX_LEAF_INDEX = 2**63 - 1


def proof_for(session: Session, person_id: str, leaf: int) -> dict[str, Any] | None:
    """The inclusion proof of one of the person's entries, with the verifier keys; None while
    the entry is not under a signed checkpoint yet; NotTheirs for anyone else's leaf, which
    looks exactly like a leaf that does not exist."""
    if leaf > MAX_LEAF_INDEX:
        raise NotTheirs(leaf)
    row = session.scalars(
        select(AuditRecord).where(
            AuditRecord.leaf_index == leaf,
            AuditRecord.person_id == person_id,
            AuditRecord.actor_type != "client",
        )
    ).first()
    if row is None:
        raise NotTheirs(leaf)
    try:
        proof = prove(session, leaf_index=leaf)
    except LookupError:
        return None
    proof["keys"] = [k.text() for k in published_keys(session)]
    proof["leaf_hash"] = row.leaf_hash
    if row.actor_type == "staff":
        # The leaf names a staff member; the client sees the role, not the person, and
        # checks the leaf's hash instead of its text.
        proof["leaf"] = None
    return proof


def _roles(session: Session, emails: set[str]) -> dict[str, str]:
    if not emails:
        return {}
    rows = session.execute(
        select(StaffAccount.email, StaffAccount.role).where(StaffAccount.email.in_(emails))
    )
    return {email: role for email, role in rows}


def _partner_terms(
    session: Session,
    cases: list[Referral],
    words: Words,
    catalogue: Catalogue,
    policy: Policy,
) -> tuple[str, str]:
    purposes: dict[str, None] = {}
    bases: dict[str, None] = {}
    for referral in cases:
        rtype = catalogue.get(referral.type)
        if rtype is not None:
            purposes[words.label("purpose", rtype.purpose)] = None
        route = route_between(
            session,
            policy,
            requester=referral.requester_id,
            performer=referral.performer_id,
            type_=referral.type,
        )
        if route is not None:
            basis = words.t("access.basis.consent") if route.needs_consent else route.legal_basis
            bases[basis] = None
    return ", ".join(purposes), "; ".join(bases)


def _staff_basis(purpose: str | None, catalogue: Catalogue, words: Words) -> str:
    consent_only = purpose is not None and all(
        t.legal_basis == "consent" for t in catalogue.types.values() if t.purpose == purpose
    )
    return words.t("access.basis.consent" if consent_only else "access.basis.staff")
