"""Partner API: referrals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from hub import jsontext
from hub.api.deps import (
    Call,
    CatalogueDep,
    PolicyDep,
    SessionDep,
    SettingsDep,
    audit_call,
    audit_read,
    caller,
    configured,
    writing_caller,
)
from hub.auth.deps import commit_together
from hub.partners.models import Partner
from hub.referrals import service
from hub.referrals.idempotency import (
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    Answer,
    Repeated,
    request_hash,
    run_first,
)
from hub.referrals.views import summary_of, view_of
from schemas.lifecycle import Role, Status
from schemas.messages import (
    ReferralAccepted,
    ReferralCreate,
    ReferralPage,
    ReferralView,
    StatusChange,
)

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN),
]


@router.post(
    "",
    status_code=202,
    response_model=ReferralAccepted,
    summary="Request a referral to another partner",
    responses={
        202: {
            "description": "Stored with its event; the referral is at `Location`",
            "headers": {
                "Location": {
                    "description": "The referral's URL, `/v1/referrals/{id}`",
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def create_referral(
    body: ReferralCreate,
    request: Request,
    call: Annotated[Call, Depends(writing_caller("referrals:write"))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Accepted (202) once the referral and its event are durably stored together."""
    settings, catalogue, policy = configured(request)
    partner = call.partner
    fingerprint = request_hash("POST", request.scope["path"], body.model_dump(mode="json"))

    def action(shared: Session) -> Answer:
        referral = service.request_referral(
            shared,
            body=body,
            by=partner,
            catalogue=catalogue,
            policy=policy,
            settings=settings,
        )
        accepted = ReferralAccepted(
            id=UUID(referral.id), status=Status.REQUESTED, person_id=referral.person_id
        )
        return Answer(202, accepted.model_dump(mode="json"), f"/v1/referrals/{referral.id}")

    return await _keyed(request, call, idempotency_key, fingerprint, action)


@router.get("/{referral_id}", response_model=ReferralView, summary="Read one referral")
def read_referral(
    referral_id: UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("referrals:read"))],
) -> ReferralView:
    """The referral with its status history and deadline clocks; 404 for non-participants."""
    referral = service.get_referral(
        session, referral_id=str(referral_id), viewer=partner.id, policy=policy
    )
    audit_read(session, request, partner.id, [(referral.person_id, referral.id)])
    return view_of(
        referral,
        service.payload_of(session, referral),
        service.holds(session, referral_id=referral.id),
        service.clocks(session, referral, catalogue=catalogue, settings=settings),
        viewer=partner.id,
        policy=policy,
    )


@router.get("", response_model=ReferralPage, summary="List your referrals")
def list_referrals(
    request: Request,
    session: SessionDep,
    policy: PolicyDep,
    partner: Annotated[Partner, Depends(caller("referrals:read"))],
    role: Role | None = None,
    status: Status | None = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    overdue: bool = False,
) -> ReferralPage:
    """Referrals you requested or perform, newest first; ``overdue=true``: your overdue work."""
    rows, next_cursor = service.list_referrals(
        session,
        viewer=partner.id,
        role=role,
        status=status,
        type_=type,
        limit=limit,
        cursor=cursor,
        overdue=overdue,
        policy=policy,
    )
    items = [summary_of(r, viewer=partner.id, policy=policy) for r in rows]
    audit_read(session, request, partner.id, [(r.person_id, r.id) for r in rows])
    return ReferralPage(items=items, next_cursor=next_cursor)


@router.post("/{referral_id}/status", response_model=ReferralView, summary="Report a status change")
async def change_status(
    referral_id: UUID,
    body: StatusChange,
    request: Request,
    call: Annotated[Call, Depends(writing_caller("status:write"))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Apply a lifecycle transition; the wrong party or an illegal move is a 409."""
    settings, catalogue, policy = configured(request)
    partner = call.partner
    fingerprint = request_hash("POST", request.scope["path"], body.model_dump(mode="json"))

    def action(shared: Session) -> Answer:
        referral = service.change_status(
            shared,
            referral_id=str(referral_id),
            change=body,
            by=partner,
            catalogue=catalogue,
            policy=policy,
            settings=settings,
        )
        # Stored for Idempotency-Key replays, so it must hold no personal data: the payload
        # is left out here (GET the referral for it).
        view = view_of(
            referral,
            {},
            service.holds(shared, referral_id=referral.id),
            viewer=partner.id,
            policy=policy,
        )
        return Answer(200, view.model_dump(mode="json"))

    return await _keyed(request, call, idempotency_key, fingerprint, action)


async def _keyed(
    request: Request,
    call: Call,
    key: str | None,
    fingerprint: str,
    action: Callable[[Session], Answer],
) -> Response:
    """``action`` once per ``Idempotency-Key``, committed with other requests' work."""
    partner_id = call.partner.id

    def unit(shared: Session) -> Response:
        return _once(shared, request, partner_id, key, fingerprint, lambda: action(shared))

    return await commit_together(request, call.rows, unit)


def _once(
    session: Session,
    request: Request,
    partner_id: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], Answer],
) -> Response:
    try:
        answer = run_first(
            session, partner_id=partner_id, key=key, fingerprint=fingerprint, action=action
        )
    except Repeated as repeat:
        # The route owns the transaction: this run's effects go, the first request's stand,
        # and the call itself is still on record.
        session.rollback()
        audit_call(session, request, partner_id)
        answer = repeat.answer
    return _respond(answer)


def _respond(answer: Answer) -> Response:
    headers = {"Location": answer.location} if answer.location else None
    return Response(
        jsontext.encode(answer.body),
        status_code=answer.status_code,
        headers=headers,
        media_type="application/json",
    )
