"""Pure rules for referrals: who may request what from whom, and which status moves are legal."""

from __future__ import annotations

from typing import Any

from hub.errors import Forbidden, IllegalTransition, InvalidInput
from schemas.catalogue import ReferralType, validate_payload
from schemas.lifecycle import REASONS, Role, Status, allowed_role, next_states
from schemas.messages import StatusChange


def check_request(
    rtype: ReferralType,
    *,
    requester_kind: str,
    performer_id: str,
    performer_kind: str,
    payload: dict[str, Any],
) -> None:
    """Raise unless a partner of ``requester_kind`` may ask ``performer_id`` for this type."""
    if requester_kind not in rtype.requester:
        raise Forbidden(
            f"partners of kind {requester_kind!r} may not request {rtype.id!r}",
            allowed_requester_kinds=rtype.requester,
        )
    if performer_kind not in rtype.performer:
        raise InvalidInput(
            f"performer {performer_id!r} is of kind {performer_kind!r}; "
            f"{rtype.id!r} is performed by {', '.join(rtype.performer)}",
            field="performer",
        )
    problems = validate_payload(rtype, payload)
    if problems:
        raise InvalidInput(
            "; ".join(f"{f}: {m}" for f, m in problems),
            errors=[{"field": f, "message": m} for f, m in problems],
        )


def roles_of(partner_id: str, *, requester: str, performer: str) -> set[Role]:
    """The roles a partner has in a referral (both for a referral to itself)."""
    roles = set()
    if partner_id == requester:
        roles.add(Role.REQUESTER)
    if partner_id == performer:
        roles.add(Role.PERFORMER)
    return roles


def check_transition(
    rtype: ReferralType, *, current: Status, change: StatusChange, roles: set[Role]
) -> None:
    """Raise unless the parties in ``roles`` may apply ``change`` to a referral in ``current``."""
    needed = allowed_role(current, change.status)
    if needed is None:
        raise IllegalTransition(
            f"a referral in status {current.value!r} cannot move to {change.status.value!r}",
            current_status=current.value,
            allowed=sorted({s.value for r in Role for s in next_states(current, r)}),
        )
    if needed not in roles:
        raise IllegalTransition(
            f"only the {needed.value} may set {change.status.value!r}",
            current_status=current.value,
            allowed=sorted({s.value for r in roles for s in next_states(current, r)}),
        )
    if current == change.status and not change.business_status:
        raise IllegalTransition(
            f"referral is already {current.value!r}; repeat it only with a business_status",
            current_status=current.value,
        )
    _check_codes(rtype, change)


def _check_codes(rtype: ReferralType, change: StatusChange) -> None:
    if change.business_status and change.business_status not in rtype.business_statuses:
        raise InvalidInput(
            f"business_status {change.business_status!r} is not defined for {rtype.id!r}",
            field="business_status",
            allowed=rtype.business_statuses,
        )
    if change.reason:
        allowed = REASONS.get(change.status, frozenset())
        if change.reason not in allowed:
            raise InvalidInput(
                f"reason {change.reason!r} is not defined for status {change.status.value!r}",
                field="reason",
                allowed=sorted(allowed),
            )
    if change.outcome and change.status != Status.COMPLETED:
        raise InvalidInput("outcome is only given with status 'completed'", field="outcome")
