"""Partner API: a person's consents."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request

from hub.api.deps import PolicyDep, SessionDep, audit_read, caller
from hub.api.problems import PROBLEM_RESPONSES
from hub.consent import service, withdrawal
from hub.consent.models import Consent
from hub.errors import NotFound
from hub.partners.models import Partner
from hub.referrals.repository import takes_part
from schemas.messages import ConsentCreate, ConsentView

router = APIRouter(tags=["consent"])


@router.post(
    "/v1/consents",
    status_code=201,
    response_model=ConsentView,
    summary="Record a consent the person gave",
)
def record_consent(
    body: ConsentCreate,
    session: SessionDep,
    partner: Annotated[Partner, Depends(caller("consent:write"))],
) -> ConsentView:
    """Purpose, partners covered, date, evidence reference and language of the notice."""
    return view_of(service.record(session, body=body, by=partner))


@router.get(
    "/v1/people/{person_id}/consents",
    response_model=list[ConsentView],
    summary="A person's consents",
)
def list_consents(
    person_id: Annotated[str, Path(max_length=70)],
    request: Request,
    session: SessionDep,
    partner: Annotated[Partner, Depends(caller("consent:read"))],
) -> list[ConsentView]:
    """Consents you recorded or that cover you, withdrawn ones included; 404 for a person you
    have neither a consent nor a referral with, exactly as for one that does not exist."""
    consents = service.visible_to(session, person_id=person_id, viewer=partner.id)
    if not consents and not takes_part(session, person_id=person_id, partner_id=partner.id):
        raise NotFound(f"no person {person_id} in your referrals or consents")
    audit_read(session, request, partner.id, [(c.person_id, None) for c in consents])
    return [view_of(c) for c in consents]


@router.post(
    "/v1/consents/{consent_id}/withdraw",
    response_model=ConsentView,
    summary="Withdraw a consent",
    responses={409: {**PROBLEM_RESPONSES[409], "description": "Already withdrawn"}},
)
def withdraw_consent(
    consent_id: UUID,
    session: SessionDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("consent:write"))],
) -> ConsentView:
    """From now on, flows that rely on it stop; what has not reached its partner is held."""
    withdrawn = withdrawal.withdraw(
        session, consent_id=str(consent_id), by=partner.id, policy=policy
    )
    return view_of(withdrawn)


def view_of(consent: Consent) -> ConsentView:
    """The API view of a consent."""
    return ConsentView(
        id=UUID(consent.id),
        person_id=consent.person_id,
        purpose=consent.purpose,
        partners=consent.partners,
        granted_on=consent.granted_on,
        evidence_reference=consent.evidence_reference,
        notice_language=consent.notice_language,
        shared_with_purposes=consent.shared_with_purposes or [],
        recorded_by=consent.recorded_by,
        recorded_at=consent.recorded_at,
        withdrawn_at=consent.withdrawn_at,
        withdrawn_by=consent.withdrawn_by,
        active=consent.withdrawn_at is None,
    )
