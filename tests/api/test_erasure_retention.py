"""Retention shreds a referral whose person is kept: its staff notes and stored answers go."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.crypto.fields import open_value, seal_value
from hub.db import unit_of_work, utcnow
from hub.privacy import retention
from hub.referrals.models import IdempotencyRecord, StaffNote
from tests.hubtest import STUDENT_REFERRAL, Partners

NOTE = "Rueckrufvermerk fuer den Kunden"


def test_a_shredded_referral_loses_its_staff_notes_and_stored_answers(
    client: TestClient, partners: Partners, hub_and_partners: Any
) -> None:
    hub = hub_and_partners[0]
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    keyed = {**ude, "Idempotency-Key": "zulassung-4711"}
    done = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=keyed).json()
    person = {"id": done["person_id"]}
    kept = client.post("/v1/referrals", json={**STUDENT_REFERRAL, "person": person}, headers=ude)
    assert kept.status_code == 202
    for step in ({"status": "accepted"}, {"status": "completed", "outcome": "granted"}):
        assert client.post(f"/v1/referrals/{done['id']}/status", json=step, headers=amt).is_success
    with unit_of_work(hub.session_factory) as session:
        for rid in (done["id"], kept.json()["id"]):
            text = seal_value(session, done["person_id"], NOTE) or ""
            session.add(
                StaffNote(referral_id=rid, person_id=done["person_id"], author="tc", text=text)
            )

    with unit_of_work(hub.session_factory) as session:
        [item] = retention.shred(
            session, policy=hub.policy, now=utcnow() + timedelta(days=731), topic="t"
        )
    assert (item.referral_id, item.erase_person) == (done["id"], False)  # the person is kept
    with hub.session_factory() as session:
        notes = session.scalars(select(StaffNote)).all()
        assert [n.referral_id for n in notes] == [kept.json()["id"]]
        # The person's key lives on: a note left behind would still read back.
        assert open_value(session, done["person_id"], notes[0].text) == NOTE
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
