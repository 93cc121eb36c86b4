"""Partner API: native messages through the partner kind's connector."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse

from hub.api.deps import CatalogueDep, PolicyDep, SessionDep, SettingsDep, audit_call, partner_of
from hub.auth.deps import require_scope
from hub.auth.tokens import Principal
from hub.referrals.inbound import apply_native

router = APIRouter(prefix="/v1/connectors", tags=["connectors"])

Kind = Annotated[str, Path(pattern=r"^(university|chamber|jobcenter|authority)$")]


@router.post("/{kind}/messages", status_code=202, summary="Send a message in your native format")
def post_native_message(
    kind: Kind,
    native: Annotated[dict[str, Any], Body()],
    session: SessionDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
    policy: PolicyDep,
    principal: Annotated[Principal, Depends(require_scope("referrals:read"))],
    request: Request,
) -> JSONResponse:
    """Mapped by your connector and applied like the canonical API (422 names the field).

    Each operation also needs its own scope: ``referrals:write`` to create a referral,
    ``status:write`` to report a status.
    """
    audit_call(session, request, principal.partner_id)
    results = apply_native(
        session,
        kind=kind,
        native=native,
        by=partner_of(session, principal),
        principal=principal,
        catalogue=catalogue,
        policy=policy,
        settings=settings,
    )
    return JSONResponse({"operations": results}, status_code=202)
