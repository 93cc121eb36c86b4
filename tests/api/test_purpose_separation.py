"""Staff see only the timeline entries of their purpose domains (enforced in the service)."""

from __future__ import annotations

import uuid
from typing import Any

from hub.db import unit_of_work, utcnow
from hub.people.models import Person
from hub.timeline.models import TimelineEntry
from hub.timeline.service import timeline_for_staff


def test_counselling_is_invisible_to_residence_caseworkers(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    now = utcnow()
    with unit_of_work(hub.session_factory) as session:
        session.add(Person(id="p_separation_test_0001"))
        session.flush()
        for purpose in ("residence", "counselling", "recognition", None):
            session.add(
                TimelineEntry(
                    event_id=str(uuid.uuid4()),
                    person_id="p_separation_test_0001",
                    source_partner="amt",
                    event_type="t",
                    purpose=purpose,
                    occurred_at=now,
                    recorded_at=now,
                )
            )
    with hub.session_factory() as session:
        residence = timeline_for_staff(
            session, person_id="p_separation_test_0001", purposes=frozenset({"residence"})
        )
        counselling = timeline_for_staff(
            session,
            person_id="p_separation_test_0001",
            purposes=frozenset({"counselling", "recognition"}),
        )
    assert [e.purpose for e in residence] == ["residence", None]
    assert sorted(str(e.purpose) for e in counselling) == ["None", "counselling", "recognition"]


def test_consent_can_share_counselling_with_residence_staff(hub_and_partners: Any) -> None:
    from datetime import date

    from hub.consent.service import grant, withdraw

    hub = hub_and_partners[0]
    now = utcnow()
    with unit_of_work(hub.session_factory) as session:
        session.add(Person(id="p_separation_test_0002"))
        session.flush()
        session.add(
            TimelineEntry(
                event_id=str(uuid.uuid4()),
                person_id="p_separation_test_0002",
                source_partner="amt",
                event_type="t",
                purpose="counselling",
                occurred_at=now,
                recorded_at=now,
            )
        )
        consent = grant(
            session,
            person_id="p_separation_test_0002",
            purpose="counselling",
            partners=["amt"],
            granted_on=date.today(),
            evidence_reference="ITC 1",
            notice_language="de",
            by="staff:desk",
            shared_with_purposes=["residence"],
        )
    residence = frozenset({"residence"})
    with hub.session_factory() as session:
        shown = timeline_for_staff(session, person_id="p_separation_test_0002", purposes=residence)
    assert [e.purpose for e in shown] == ["counselling"]
    with unit_of_work(hub.session_factory) as session:
        withdraw(session, consent_id=consent.id, by="staff:desk", partner=False)
    with hub.session_factory() as session:
        assert (
            timeline_for_staff(session, person_id="p_separation_test_0002", purposes=residence)
            == []
        )
