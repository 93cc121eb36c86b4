"""Art. 19 GDPR: an erasure reaches every partner that got the person's data, each told only
of its own referrals, by inbox (pull) and by push in the partner's native format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.db import unit_of_work
from hub.privacy.service import erase_person
from schemas.cloudevents import EventType
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import start_delivery, start_sims

pytestmark = pytest.mark.integration


def erasures(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    items = client.get("/v1/inbox", headers=headers).json()["items"]
    return [i for i in items if i["event_type"] == EventType.PERSON_ERASED]


def test_every_party_of_an_erased_person_is_told_of_its_own_referrals(running: Running) -> None:
    sims = start_sims(running, ["ihk-fosa"])
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    start_delivery(running)
    person = {"given_name": "Oksana", "family_name": "Melnykowa", "birth_date": "1996-04-02"}
    with api_client(running.hub) as client:
        ude, amt = running.partners.headers(client, "ude"), running.partners.headers(client, "amt")
        student = client.post(
            "/v1/referrals",
            headers=ude,
            json={
                "type": "residence.student",
                "performer": "amt",
                "person": {**person, "partner_reference": "DU123456701"},
                "payload": {"programme": "M.Sc. Physik", "semester": "2027S"},
            },
        ).json()
        pid = student["person_id"]
        for step in ({"status": "accepted"}, {"status": "completed", "outcome": "granted"}):
            r = client.post(f"/v1/referrals/{student['id']}/status", json=step, headers=amt)
            assert r.status_code == 200, r.text
        recognition = client.post(
            "/v1/referrals",
            headers=amt,
            json={
                "type": "recognition.assessment",
                "performer": "ihk-fosa",
                "person": {"id": pid},
                "payload": {"reference_occupation": "Physiklaborant/in"},
            },
        ).json()
        assert "id" in recognition, recognition
        other = client.post(
            "/v1/referrals",
            headers=ude,
            json={
                "type": "residence.student",
                "performer": "amt",
                "person": {"given_name": "Kemal", "family_name": "Aydin"},
                "payload": {"programme": "B.Sc. Chemie", "semester": "2027S"},
            },
        ).json()
        wait_for(lambda: len(sims["ihk-fosa"].received()) == 1)

        with unit_of_work(running.hub.session_factory) as session:
            erase_person(
                session,
                person_id=pid,
                reason="request-art-17",
                by="staff:dsb",
                topic=running.hub.settings.topic_events,
            )

        [to_ude] = wait_for(lambda: erasures(client, ude))
        [to_amt] = wait_for(lambda: erasures(client, amt))
        assert to_ude["referral_id"] is None and to_ude["data"]["person_id"] == pid
        assert to_ude["data"]["notify"] == {"ude": [student["id"]]}
        assert to_amt["data"]["notify"] == {"amt": [student["id"], recognition["id"]]}
        assert to_ude["event_id"] == to_amt["event_id"]
        for told in (to_ude, to_amt):
            assert other["id"] not in json.dumps(told) and "Melnykowa" not in json.dumps(told)

        def notices() -> list[dict[str, Any]]:
            bodies = [d.body for d in sims["ihk-fosa"].received().values()]
            return [b for b in bodies if b.get("meldungsart") == "LOESCHMITTEILUNG"]

        [notice] = wait_for(notices)
        assert notice["person_pseudonym"] == pid
        assert notice["vermittlung_ids"] == [recognition["id"]]  # not the Amt's other referral
        # The open referral was closed too, and the chamber heard of that as well.
        view = client.get(f"/v1/referrals/{recognition['id']}", headers=amt).json()
        assert (view["status"], view["history"][-1]["reason"]) == ("cancelled", "person-erased")
        wait_for(
            lambda: any(
                d.body.get("grund") == "person-erased" for d in sims["ihk-fosa"].received().values()
            )
        )
    # A partner that never took part hears nothing.
    with api_client(running.hub) as client:
        assert erasures(client, running.partners.headers(client, "hwk")) == []
