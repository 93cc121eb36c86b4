"""Use cases for referrals: request one, change its status, read and list them.

Services never commit: the entry point owns the transaction. Every state change writes its
event to the outbox in the same transaction, so it is published if and only if it commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hub import telemetry
from hub.consent.service import covering
from hub.crypto.fields import open_event, seal_event, seal_value
from hub.db import after_commit, utcnow
from hub.deadlines import service as deadlines
from hub.errors import ConsentRequired, Forbidden, InvalidInput, NotFound
from hub.events.service import attributes_for
from hub.outbox.service import add_rows
from hub.partners.models import Partner
from hub.partners.service import active_partner_to_read
from hub.people.service import resolve_person
from hub.policy.model import Party, Policy, Route
from hub.referrals import domain, repository
from hub.referrals.models import Referral, StatusHistory
from hub.routing import service as routing
from hub.routing.models import RoutingHold
from hub.settings import Settings
from schemas.catalogue import Catalogue, ReferralType
from schemas.cloudevents import EventType
from schemas.lifecycle import Role, Status
from schemas.messages import (
    ClockView,
    PersonDetails,
    ReferralCreate,
    ReferralRequested,
    ReferralStatusChanged,
    StatusChange,
)


def request_referral(
    session: Session,
    *,
    body: ReferralCreate,
    by: Partner,
    catalogue: Catalogue,
    policy: Policy,
    settings: Settings,
) -> repository.NewReferral:
    """Store a new referral and its ``referral.requested`` event.

    Nothing read here depends on what this request stages, so queries do not flush: the
    referral and its history are written at once, the request's audit entry at commit.
    """
    with session.no_autoflush:
        return _request_referral(session, body, by, catalogue, policy, settings)


def _request_referral(
    session: Session,
    body: ReferralCreate,
    by: Partner,
    catalogue: Catalogue,
    policy: Policy,
    settings: Settings,
) -> repository.NewReferral:
    rtype = _type(catalogue, body.type)
    performer = active_partner_to_read(session, body.performer)
    if performer is None:
        raise InvalidInput(
            f"performer {body.performer!r} is not a registered partner", field="performer"
        )
    domain.check_request(
        rtype,
        requester_kind=by.kind,
        performer_id=performer.id,
        performer_kind=performer.kind,
        payload=body.payload,
    )
    route = policy.route(Party(by.id, by.kind), Party(performer.id, performer.kind), rtype.id)
    if route is None:
        raise Forbidden(
            f"the route policy has no route {by.id} -> {performer.id} for {rtype.id!r}",
            missing_route={"requester": by.id, "performer": performer.id, "type": rtype.id},
        )
    person = resolve_person(session, partner_id=by.id, person=body.person)
    _check_consent(session, route, person.id)
    now = utcnow()
    referral_id, correlation_id = uuid.uuid4(), body.correlation_id or uuid.uuid4()
    # Sealed once: the referral's row and its event carry the same tokens (the person's
    # fields are tokens already), and sealing skips what is sealed.
    payload = seal_event(session, person.id, {"payload": body.payload})["payload"]
    event = ReferralRequested(
        event_id=uuid.uuid4(),
        referral_id=referral_id,
        person_id=person.id,
        acting_partner=by.id,
        occurred_at=now,
        recorded_at=now,
        purpose=route.purpose,
        legal_basis=route.legal_basis,
        correlation_id=correlation_id,
        referral_type=rtype.id,
        requester=by.id,
        performer=performer.id,
        person=PersonDetails(
            given_name=person.given_name,
            family_name=person.family_name,
            birth_date=person.birth_date,
        ),
        payload=body.payload,
    )
    referral = repository.add_new(
        session,
        {
            "id": str(referral_id),
            "type": rtype.id,
            "requester_id": by.id,
            "performer_id": performer.id,
            "person_id": person.id,
            "status": Status.REQUESTED.value,
            "payload": payload,
            "correlation_id": str(correlation_id),
            "created_at": now,
            "updated_at": now,
            "shredded_at": None,
        },
        _first_entry(event),
    )
    rows = routing.at_acceptance(
        session,
        settings=settings,
        policy=policy,
        attrs=attributes_for(EventType.REFERRAL_REQUESTED, event),
        data=seal_event(session, person.id, {**event.model_dump(mode="json"), "payload": payload}),
        route=route,  # checked above, consent included
    )
    add_rows(session, rows)
    # Counted once committed: an idempotent repeat does the work and then rolls it back.
    counter, labels = telemetry.metrics().referrals_accepted, {"type": rtype.id, "requester": by.id}
    after_commit(session, lambda: counter.add(1, labels))
    return referral


def change_status(
    session: Session,
    *,
    referral_id: str,
    change: StatusChange,
    by: Partner,
    catalogue: Catalogue,
    policy: Policy,
    settings: Settings,
) -> Referral:
    """Apply a lifecycle transition reported by a participant of the referral; the other
    party's copy is routed with it."""
    referral = get_referral(session, referral_id=referral_id, viewer=by.id)
    rtype = _type(catalogue, referral.type)
    roles = domain.roles_of(by.id, requester=referral.requester_id, performer=referral.performer_id)
    current = Status(referral.status)
    domain.check_transition(rtype, current=current, change=change, roles=roles)
    now = utcnow()
    occurred = _occurred_at(change.occurred_at, now, settings)
    event = ReferralStatusChanged(
        event_id=uuid.uuid4(),
        referral_id=uuid.UUID(referral.id),
        person_id=referral.person_id,
        acting_partner=by.id,
        occurred_at=occurred,
        recorded_at=now,
        purpose=rtype.purpose,
        legal_basis=rtype.legal_basis,
        correlation_id=uuid.UUID(referral.correlation_id),
        referral_type=rtype.id,
        requester=referral.requester_id,
        performer=referral.performer_id,
        from_status=current,
        status=change.status,
        business_status=change.business_status,
        reason=change.reason,
        outcome=change.outcome,
        note=change.note,
    )
    referral.status = change.status.value
    referral.business_status = change.business_status
    referral.updated_at = now
    _record(session, referral, event, status=change.status, change=change)
    rows = routing.at_acceptance(
        session,
        settings=settings,
        policy=policy,
        attrs=attributes_for(EventType.REFERRAL_STATUS_CHANGED, event),
        data=seal_event(session, referral.person_id, event.model_dump(mode="json")),
    )
    add_rows(session, rows)
    return referral


def get_referral(
    session: Session, *, referral_id: str, viewer: str, policy: Policy | None = None
) -> Referral:
    """The referral, if ``viewer`` takes part in it; otherwise it does not exist for them.

    With ``policy``, a performer is refused (403 ``consent-withdrawn``) a referral whose route
    rests on a consent the person has withdrawn: the hub no longer makes its data available
    to it. The requester keeps reading what it sent, with the holds that now stop it.
    """
    referral = repository.get(session, referral_id)
    if referral is None or viewer not in (referral.requester_id, referral.performer_id):
        raise NotFound(f"no referral {referral_id}")
    if policy is not None and viewer == referral.performer_id:
        routing.require_consent(session, policy, _flow(referral))
    return referral


def payload_of(session: Session, referral: Referral) -> dict[str, Any]:
    """The referral's payload, decrypted (erased fields read as erased)."""
    opened = open_event(session, referral.person_id, {"payload": referral.payload})
    return dict(opened["payload"])


def holds(session: Session, *, referral_id: str) -> list[RoutingHold]:
    """Deliveries of this referral the router holds back, with their reasons."""
    return routing.holds_for_referral(session, referral_id)


def list_referrals(
    session: Session,
    *,
    viewer: str,
    role: Role | None,
    status: Status | None,
    type_: str | None,
    limit: int,
    cursor: str | None,
    overdue: bool = False,
    policy: Policy | None = None,
) -> tuple[list[Referral], str | None]:
    """The viewer's referrals, newest first; ``overdue``: the ones it performs that are late.

    With ``policy``, referrals it performs whose consent was withdrawn are left out (a page
    may come back shorter than ``limit``; the cursor goes on from there).
    """
    rows, next_cursor = repository.page(
        session,
        partner_id=viewer,
        role=Role.PERFORMER if overdue else role,
        status=status.value if status else None,
        type_=type_,
        limit=limit,
        cursor=cursor,
        only=deadlines.overdue_referral_ids(viewer, utcnow()) if overdue else None,
    )
    if policy is None:
        return rows, next_cursor
    return [r for r in rows if _readable(session, policy, r, viewer)], next_cursor


def _flow(referral: Referral) -> dict[str, Any]:
    """What the route and consent checks need to know of a referral."""
    return {
        "requester": referral.requester_id,
        "performer": referral.performer_id,
        "referral_type": referral.type,
        "person_id": referral.person_id,
    }


def _readable(session: Session, policy: Policy, referral: Referral, viewer: str) -> bool:
    if viewer != referral.performer_id:
        return True
    return routing.withheld_reason(session, policy, _flow(referral)) is None


def clocks(
    session: Session, referral: Referral, *, catalogue: Catalogue, settings: Settings
) -> list[ClockView]:
    """The referral's deadline clocks as they stand now."""
    return [
        ClockView(
            name=c.name,
            state=c.state,
            started_at=c.started_at,
            due_at=c.due_at,
            due_date=c.due_date,
            warn_at=c.warn_at,
            suggestion=c.suggestion,
            time_left_seconds=c.time_left.total_seconds() if c.time_left is not None else None,
        )
        for c in deadlines.clocks_of(
            session, referral, catalogue=catalogue, settings=settings, now=utcnow()
        )
    ]


def _check_consent(session: Session, route: Route, person_id: str) -> None:
    if (
        route.needs_consent
        and covering(
            session,
            person_id=person_id,
            purpose=route.purpose,
            partners={route.requester, route.performer},
        )
        is None
    ):
        raise ConsentRequired(
            f"{route.name} needs the person's consent for {route.purpose}, covering "
            f"{route.requester} and {route.performer}; none is active",
            person_id=person_id,
        )


def _type(catalogue: Catalogue, type_id: str) -> ReferralType:
    rtype = catalogue.get(type_id)
    if rtype is None:
        raise InvalidInput(
            f"unknown referral type {type_id!r}", field="type", allowed=sorted(catalogue.types)
        )
    return rtype


def _occurred_at(given: datetime | None, now: datetime, settings: Settings) -> datetime:
    if given is None:
        return now
    if given > now + timedelta(seconds=settings.clock_skew_seconds):
        raise InvalidInput("occurred_at lies in the future", field="occurred_at")
    return given


def _first_entry(event: ReferralRequested) -> dict[str, Any]:
    return {
        "status": Status.REQUESTED.value,
        "business_status": None,
        "reason": None,
        "outcome": None,
        "note": None,
        "set_by": event.acting_partner,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "event_id": str(event.event_id),
    }


def _record(
    session: Session,
    referral: Referral,
    event: ReferralRequested | ReferralStatusChanged,
    *,
    status: Status,
    change: StatusChange | None,
) -> None:
    referral.history.append(
        StatusHistory(
            referral_id=referral.id,
            status=status.value,
            business_status=change.business_status if change else None,
            reason=change.reason if change else None,
            outcome=change.outcome if change else None,
            note=seal_value(session, referral.person_id, change.note) if change else None,
            set_by=event.acting_partner,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            event_id=str(event.event_id),
        )
    )
