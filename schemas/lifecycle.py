"""Referral lifecycle (design §5): business states, the transition table and who may set what.

States follow the FHIR Task statuses used by the public closed-loop referral guides.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    REQUESTED = "requested"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ENTERED_IN_ERROR = "entered-in-error"


class Role(StrEnum):
    """The side of a referral a partner is on."""

    REQUESTER = "requester"
    PERFORMER = "performer"


TERMINAL: frozenset[Status] = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.REJECTED, Status.CANCELLED, Status.ENTERED_IN_ERROR}
)

ACTIVE: frozenset[Status] = frozenset(Status) - TERMINAL

#: (from, to) -> the role allowed to make that move. Cancellation and correction are the
#: requester's; everything the performer does about the work is the performer's.
TRANSITIONS: dict[tuple[Status, Status], Role] = {
    (Status.REQUESTED, Status.RECEIVED): Role.PERFORMER,
    (Status.REQUESTED, Status.ACCEPTED): Role.PERFORMER,
    (Status.REQUESTED, Status.REJECTED): Role.PERFORMER,
    (Status.RECEIVED, Status.ACCEPTED): Role.PERFORMER,
    (Status.RECEIVED, Status.REJECTED): Role.PERFORMER,
    (Status.ACCEPTED, Status.IN_PROGRESS): Role.PERFORMER,
    (Status.ACCEPTED, Status.ON_HOLD): Role.PERFORMER,
    (Status.ACCEPTED, Status.COMPLETED): Role.PERFORMER,
    (Status.ACCEPTED, Status.FAILED): Role.PERFORMER,
    (Status.IN_PROGRESS, Status.ON_HOLD): Role.PERFORMER,
    (Status.IN_PROGRESS, Status.COMPLETED): Role.PERFORMER,
    (Status.IN_PROGRESS, Status.FAILED): Role.PERFORMER,
    (Status.ON_HOLD, Status.IN_PROGRESS): Role.PERFORMER,
    (Status.ON_HOLD, Status.FAILED): Role.PERFORMER,
    **{(s, Status.CANCELLED): Role.REQUESTER for s in ACTIVE},
    **{
        (s, Status.ENTERED_IN_ERROR): Role.REQUESTER for s in Status if s != Status.ENTERED_IN_ERROR
    },
}

#: A performer may report a new business status without changing the business state.
SELF_UPDATES: frozenset[Status] = frozenset(
    {Status.RECEIVED, Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD}
)

#: Reason codes per target state (domain.md conventions).
REASONS: dict[Status, frozenset[str]] = {
    Status.ON_HOLD: frozenset(
        {"awaiting-client-documents", "awaiting-third-party", "deadline-suspended"}
    ),
    Status.REJECTED: frozenset({"not-responsible", "not-eligible", "no-consent"}),
    Status.CANCELLED: frozenset({"withdrawn-by-client", "transferred"}),
}

#: Reasons only the hub gives a ``cancelled``, for work nobody will do any more: the person
#: was erased, or the referral stayed idle past its route's limit (``hub retention``).
PERSON_ERASED = "person-erased"
RETENTION_IDLE = "retention-idle"
HUB_REASONS = (PERSON_ERASED, RETENTION_IDLE)


def allowed_role(current: Status, target: Status) -> Role | None:
    """The role that may move a referral from ``current`` to ``target``, or None if illegal."""
    if current == target and current in SELF_UPDATES:
        return Role.PERFORMER
    return TRANSITIONS.get((current, target))


def next_states(current: Status, role: Role) -> list[Status]:
    """The states a party in ``role`` may move a referral to from ``current``."""
    return [to for (frm, to), who in TRANSITIONS.items() if frm == current and who == role]


def next_actor(current: Status) -> Role | None:
    """The side a referral waits for: the one that may move it forward from ``current``.

    Cancelling and correcting, which the requester may do at any time, do not count; a
    terminal referral waits for nobody."""
    forward = {
        who
        for (frm, to), who in TRANSITIONS.items()
        if frm == current and to not in (Status.CANCELLED, Status.ENTERED_IN_ERROR)
    }
    if Role.PERFORMER in forward:
        return Role.PERFORMER
    return Role.REQUESTER if forward else None
