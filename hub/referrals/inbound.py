"""Native partner messages: mapped by the partner kind's connector, then applied with the
same validation, policy and lifecycle rules as the canonical API."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from connectors.base import ChangeStatus, CreateReferral, MappingError, Operation
from connectors.registry import connector_for
from hub.auth.tokens import Principal
from hub.errors import Forbidden, InvalidInput, NotFound
from hub.partners.models import Partner
from hub.policy.model import Policy
from hub.referrals import service
from hub.referrals.idempotency import Answer, request_hash, run_once
from hub.settings import Settings
from schemas.catalogue import Catalogue


def apply_native(
    session: Session,
    *,
    kind: str,
    native: dict[str, Any],
    by: Partner,
    principal: Principal,
    catalogue: Catalogue,
    policy: Policy,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Map one native message and apply its operations; returns one result per operation."""
    if by.kind != kind:
        raise Forbidden(f"partners of kind {by.kind!r} cannot send {kind!r} messages")
    try:
        connector = connector_for(kind)
    except KeyError as exc:
        raise NotFound(f"no connector for kind {kind!r}") from exc
    try:
        operations = connector.inbound.to_operations(native)
    except MappingError as exc:
        raise InvalidInput(f"{exc.field}: {exc.message}", field=exc.field) from exc
    return [_apply(session, op, by, principal, catalogue, policy, settings) for op in operations]


def _apply(
    session: Session,
    op: Operation,
    by: Partner,
    principal: Principal,
    catalogue: Catalogue,
    policy: Policy,
    settings: Settings,
) -> dict[str, Any]:
    if isinstance(op, CreateReferral):
        principal.require("referrals:write")
        body = op.body

        def create() -> Answer:
            r = service.request_referral(
                session, body=body, by=by, catalogue=catalogue, policy=policy, settings=settings
            )
            return Answer(
                202,
                {
                    "operation": "create-referral",
                    "id": r.id,
                    "status": r.status,
                    "person_id": r.person_id,
                },
            )

        path, payload, action = "/v1/referrals", body.model_dump(mode="json"), create
    elif isinstance(op, ChangeStatus):
        principal.require("status:write")
        change, rid = op.body, str(op.referral_id)

        def change_status() -> Answer:
            r = service.change_status(
                session,
                referral_id=rid,
                change=change,
                by=by,
                catalogue=catalogue,
                policy=policy,
                settings=settings,
            )
            return Answer(
                200,
                {
                    "operation": "change-status",
                    "id": r.id,
                    "status": r.status,
                    "business_status": r.business_status,
                },
            )

        path, payload, action = (
            f"/v1/referrals/{rid}/status",
            change.model_dump(mode="json"),
            change_status,
        )
    else:  # pragma: no cover - the Operation union is closed
        raise InvalidInput("unsupported operation")
    return run_once(
        session,
        partner_id=by.id,
        key=op.idempotency_key,
        action=action,
        fingerprint=request_hash("POST", path, payload),
    ).body
