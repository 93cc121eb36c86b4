"""Telling partners of an erasure (Art. 19 GDPR): each partner that took part in one of the
person's referrals gets the ``person.erased`` event on its delivery topic, naming only the
pseudonym and its own referrals, so it can erase or restrict its own copy.

The notice carries no personal data beyond pseudonymous ids and needs no consent: like the
hub's closing of the person's open referrals, it reaches every party whatever the route.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.outbox.service import add_json
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes


def recipients(data: dict[str, Any]) -> list[str]:
    """The partners an erasure event must reach."""
    return sorted(data.get("notify") or {})


def copy_for(data: dict[str, Any], recipient: str) -> dict[str, Any]:
    """The recipient's copy: the event with only its own referrals."""
    return {**data, "notify": {recipient: list((data.get("notify") or {}).get(recipient, []))}}


def send(
    session: Session,
    *,
    settings: Settings,
    attrs: CloudEventAttributes,
    data: dict[str, Any],
    recipient: str,
) -> None:
    """Stage the recipient's copy of the erasure on its delivery topic."""
    routed = attrs.model_copy(update={"extensions": {**attrs.extensions, "recipient": recipient}})
    add_json(
        session,
        topic=settings.deliveries_topic(recipient),
        attrs=routed,
        data=copy_for(data, recipient),
    )
