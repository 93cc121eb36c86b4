"""Through the real broker and router: the other side of a referral gets only what its route
shares of a status change, in its inbox, on its delivery topic and in the history it reads.

The Jobcenter's appointment and funding codes and notes do not reach the Amt; the Amt's
permit decision and notes do not reach the Jobcenter. Codes the route does share still
arrive, so nothing here passes by dropping everything.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.test_referral_flow import read_topic

pytestmark = pytest.mark.integration

PERSON = {"given_name": "Amina", "family_name": "Haddad", "birth_date": "1994-09-12"}
JOBCENTER_NOTE = "Kundin bezieht Bürgergeld, Bedarfsgemeinschaft mit zwei Kindern"
AMT_NOTE = "Vorsprache am 12.3., Pass abgelaufen, Ausweisungsprüfung offen"


def post_status(client: TestClient, rid: str, headers: dict[str, str], **change: Any) -> None:
    r = client.post(f"/v1/referrals/{rid}/status", json=change, headers=headers)
    assert r.status_code == 200, r.text


def inbox_of(client: TestClient, headers: dict[str, str], rid: str, count: int) -> list[Any]:
    items = client.get("/v1/inbox", headers=headers).json()["items"]
    changes = [
        i["data"]
        for i in items
        if i["referral_id"] == rid and i["event_type"].endswith("status-changed.v1")
    ]
    return changes if len(changes) == count else []


def test_status_changes_reach_the_other_side_minimised(running: Running) -> None:
    running.start_relay()
    for name in ("router", "inbox", "timeline"):
        running.start_consumer_thread(name)
    p = running.partners
    with api_client(running.hub) as client:
        amt, jobcenter = p.headers(client, "amt"), p.headers(client, "jobcenter")
        integration = client.post(
            "/v1/referrals",
            json={
                "type": "jobcenter.integration",
                "performer": "jobcenter",
                "person": PERSON,
                "payload": {"integration_course_needed": True},
            },
            headers=amt,
        ).json()["id"]
        post_status(client, integration, jobcenter, status="accepted")
        post_status(
            client,
            integration,
            jobcenter,
            status="in-progress",
            business_status="FIRST_APPOINTMENT_HELD",
            note=JOBCENTER_NOTE,
        )
        post_status(
            client,
            integration,
            jobcenter,
            status="in-progress",
            business_status="RECOGNITION_FUNDING_APPROVED",
        )
        post_status(
            client,
            integration,
            jobcenter,
            status="completed",
            business_status="CASE_CLOSED",
            outcome="case-closed",
        )

        skilled = client.post(
            "/v1/referrals",
            json={
                "type": "residence.skilled-worker",
                "performer": "amt",
                "person": PERSON,
                "payload": {"occupation": "Pflegefachkraft", "employer": "Klinikum Duisburg"},
            },
            headers=jobcenter,
        ).json()["id"]
        post_status(
            client,
            skilled,
            amt,
            status="accepted",
            business_status="APPOINTMENT_BOOKED",
            note=AMT_NOTE,
        )
        post_status(
            client,
            skilled,
            amt,
            status="completed",
            business_status="PERMIT_REFUSED",
            outcome="refused",
        )

        # What the Amt received of the Jobcenter's work: statuses, and only the shared codes.
        at_amt = wait_for(lambda: inbox_of(client, amt, integration, 4))
        assert [(c["status"], c.get("business_status")) for c in at_amt] == [
            ("accepted", None),
            ("in-progress", None),
            ("in-progress", None),
            ("completed", "CASE_CLOSED"),
        ]
        assert all(c.get("note") is None for c in at_amt)
        assert "Bürgergeld" not in json.dumps(at_amt, ensure_ascii=False)

        # What the Jobcenter received of the Amt's work: no note, no permit decision.
        at_jobcenter = wait_for(lambda: inbox_of(client, jobcenter, skilled, 2))
        assert [
            (c["status"], c.get("business_status"), c.get("outcome")) for c in at_jobcenter
        ] == [("accepted", "APPOINTMENT_BOOKED", None), ("completed", None, None)]
        assert "Ausweisung" not in json.dumps(at_jobcenter, ensure_ascii=False)

        # The partner-facing reads follow the same rule for the other side's entries ...
        read_by_amt = client.get(f"/v1/referrals/{integration}", headers=amt).json()
        assert [h["business_status"] for h in read_by_amt["history"]] == [
            None,
            None,
            None,
            None,
            "CASE_CLOSED",
        ]
        read_by_jobcenter = client.get(f"/v1/referrals/{skilled}", headers=jobcenter).json()
        assert read_by_jobcenter["business_status"] is None
        assert [(h["business_status"], h["outcome"]) for h in read_by_jobcenter["history"]] == [
            (None, None),
            ("APPOINTMENT_BOOKED", None),
            (None, None),
        ]
        listed = client.get("/v1/referrals", headers=jobcenter).json()["items"]
        assert [i["business_status"] for i in listed if i["id"] == skilled] == [None]

        # So does the person's timeline a partner reads.
        def codes(referral: dict[str, Any], headers: dict[str, str], n: int) -> list[Any]:
            """the timeline has every status of the referral"""
            url = f"/v1/people/{referral['person_id']}/timeline"
            r = client.get(url, headers=headers)
            assert r.status_code == 200, r.text
            changes = [
                (e["source_partner"], e["business_status"])
                for e in r.json()["entries"]
                if e["referral_id"] == referral["id"] and e["status"] is not None
            ]
            return changes if len(changes) >= n else []

        assert wait_for(lambda: codes(read_by_amt, amt, 5)) == [
            ("amt", None),
            ("jobcenter", None),
            ("jobcenter", None),
            ("jobcenter", None),
            ("jobcenter", "CASE_CLOSED"),
        ]
        assert [c for _, c in codes(read_by_amt, jobcenter, 5)][2:4] == [
            "FIRST_APPOINTMENT_HELD",
            "RECOGNITION_FUNDING_APPROVED",
        ]  # its own
        assert codes(read_by_jobcenter, jobcenter, 3) == [
            ("jobcenter", None),
            ("amt", "APPOINTMENT_BOOKED"),
            ("amt", None),
        ]
        assert codes(read_by_jobcenter, amt, 3)[-1] == ("amt", "PERMIT_REFUSED")  # its own

        # ... while each side still reads its own changes in full.
        own = client.get(f"/v1/referrals/{skilled}", headers=amt).json()
        assert (own["business_status"], own["history"][-1]["outcome"]) == (
            "PERMIT_REFUSED",
            "refused",
        )
        own = client.get(f"/v1/referrals/{integration}", headers=jobcenter).json()
        assert [h["business_status"] for h in own["history"]][2:4] == [
            "FIRST_APPOINTMENT_HELD",
            "RECOGNITION_FUNDING_APPROVED",
        ]

    # The delivery topics themselves carry none of it (notes would be sealed; codes are not).
    bootstrap = running.hub.bootstrap_servers
    to_amt = b"".join(r.value for r in read_topic(bootstrap, "hub.deliveries.amt.v1", expect=5))
    assert b"FIRST_APPOINTMENT_HELD" not in to_amt
    assert b"RECOGNITION_FUNDING_APPROVED" not in to_amt
    assert b'"note"' not in to_amt.replace(b'"note":null', b"")
    to_jc = b"".join(
        r.value for r in read_topic(bootstrap, "hub.deliveries.jobcenter.v1", expect=3)
    )
    assert b"PERMIT_REFUSED" not in to_jc and b"refused" not in to_jc
    assert b'"note"' not in to_jc
