"""One event routed to both parties, both pulling: each inbox gets its copy.

The hub itself changes a referral's status when it erases the person (it cancels the open
referral), and the router sends that change to the requester and the performer under one
event id. The inbox consumer files both copies, so each is recorded as applied per
recipient, not per event."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hub.db import unit_of_work
from hub.events.models import ProcessedEvent
from hub.inbox.models import InboxMessage
from hub.outbox.models import OutboxEvent
from hub.privacy.service import erase_person
from tests.hubtest import STUDENT_REFERRAL, api_client
from tests.integration.conftest import Running, wait_for

pytestmark = pytest.mark.integration

STATUS_CHANGED = "de.duisburg.talenthub.referral.status-changed.v1"


def test_a_change_routed_to_both_pulling_parties_reaches_both_inboxes(running: Running) -> None:
    running.start_relay()
    for name in ("router", "inbox"):
        running.start_consumer_thread(name)
    hub = running.hub
    with api_client(hub) as client:
        created = client.post(
            "/v1/referrals", json=STUDENT_REFERRAL, headers=running.partners.headers(client, "ude")
        )
        assert created.status_code == 202, created.text
        person_id = created.json()["person_id"]

    def filed(partner: str) -> list[str]:
        with hub.session_factory() as session:
            return list(
                session.scalars(
                    select(InboxMessage.event_id).where(
                        InboxMessage.partner_id == partner,
                        InboxMessage.event_type == STATUS_CHANGED,
                    )
                )
            )

    wait_for(lambda: hub_has_filed(running, "amt"))
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session,
            person_id=person_id,
            reason="request-art-17",
            by="staff:dsb",
            topic=hub.settings.topic_events,
        )

    both = wait_for(lambda: filed("ude") and filed("amt") and (filed("ude"), filed("amt")))
    assert both[0] == both[1] and len(both[0]) == 1, both
    with hub.session_factory() as session:
        marks = set(
            session.scalars(
                select(ProcessedEvent.consumer).where(ProcessedEvent.event_id == both[0][0])
            )
        )
        copies = session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.event_id == both[0][0], OutboxEvent.topic.like("hub.deliveries.%"))
        )
    assert {"inbox.ude", "inbox.amt"} <= marks
    assert copies == 2


def hub_has_filed(running: Running, partner: str) -> bool:
    """the performer's inbox holds the referral"""
    with running.hub.session_factory() as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(InboxMessage)
                .where(InboxMessage.partner_id == partner)
            )
        )
