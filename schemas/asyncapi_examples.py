"""Example records of the AsyncAPI document (``schemas.asyncapi``): headers and data.

Made-up people and referrals; personal fields are ``enc:v1:`` tokens, as they travel. A test
checks every example's data against its event model and the schema the document gives it.
"""

from __future__ import annotations

from typing import Any

PERSON = "p_Xk3v9QmT2bLr7WzA4nQe"
REFERRAL = "0b9c6d1e-2f3a-4b5c-8d7e-9f0a1b2c3d4e"
CORRELATION = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
REQUESTED_ID = "7d1f0c2a-3b4e-4f5a-9b6c-1d2e3f4a5b6c"
STATUS_ID = "8e2a1d3b-4c5f-4a6b-8c7d-2e3f4a5b6c7d"
ORIGIN = "talent-hub.duisburg.de/audit"
LEGAL_BASIS = (
    "Antrag der Person (§ 81 Abs. 1 AufenthG), von der Hochschule in ihrem Auftrag weitergeleitet"
)


def _common(event_id: str, partner: str, at: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "referral_id": REFERRAL,
        "person_id": PERSON,
        "acting_partner": partner,
        "occurred_at": at,
        "recorded_at": at,
        "purpose": "residence",
        "legal_basis": LEGAL_BASIS,
        "schema_version": "1",
        "correlation_id": CORRELATION,
        **extra,
    }


def _headers(event_id: str, source: str, at: str, subject: str | None = REFERRAL) -> dict[str, str]:
    head = {"ce_id": event_id, "ce_source": source, "ce_time": at, "ce_partitionkey": PERSON}
    return head | ({"ce_subject": subject} if subject else {})


_REQUESTED = _common(
    REQUESTED_ID,
    "ude",
    "2027-02-16T08:15:00Z",
    referral_type="residence.student",
    requester="ude",
    performer="amt",
    person={
        "given_name": "enc:v1:AQAAAAGd3k0nY2hhY2hhMjAtcG9seTEzMDUAAAAM",
        "family_name": "enc:v1:AQAAAAGd3k0nY2hhY2hhMjAtcG9seTEzMDUAAAAN",
        "birth_date": "enc:v1:AQAAAAGd3k0nY2hhY2hhMjAtcG9seTEzMDUAAAAO",
    },
    payload={"programme": "M.Sc. Computer Engineering", "semester": "2027S"},
)
_STATUS = _common(
    STATUS_ID,
    "amt",
    "2027-02-20T10:00:00Z",
    causation_id=REQUESTED_ID,
    referral_type="residence.student",
    requester="ude",
    performer="amt",
    from_status="accepted",
    status="in-progress",
    business_status="APPOINTMENT_BOOKED",
)

EXAMPLES: dict[str, dict[str, Any]] = {
    "referralRequested": {
        "headers": _headers(REQUESTED_ID, "/partners/ude", "2027-02-16T08:15:00Z"),
        "payload": _REQUESTED,
    },
    "routedReferralRequested": {
        "headers": _headers(REQUESTED_ID, "/partners/ude", "2027-02-16T08:15:00Z"),
        "payload": _REQUESTED,
    },
    "referralStatusChanged": {
        "headers": _headers(STATUS_ID, "/partners/amt", "2027-02-20T10:00:00Z"),
        "payload": _STATUS,
    },
    "referralDeadlineDue": {
        "headers": _headers(
            "9f3b2e4c-5d6a-4b7c-9d8e-3f4a5b6c7d8e", "/partners/hub", "2027-05-01T06:00:00Z"
        ),
        "payload": _common(
            "9f3b2e4c-5d6a-4b7c-9d8e-3f4a5b6c7d8e",
            "hub",
            "2027-05-01T06:00:00Z",
            causation_id=STATUS_ID,
            referral_type="residence.student",
            requester="ude",
            performer="amt",
            clock="decision",
            kind="warning",
            due_at="2027-05-15T22:00:00Z",
        ),
    },
    "personErased": {
        "headers": _headers(
            "a0c4d3e5-6f7b-4c8d-8e9f-4a5b6c7d8e9f", "/partners/hub", "2029-03-01T02:00:00Z", None
        ),
        "payload": {
            **_common("a0c4d3e5-6f7b-4c8d-8e9f-4a5b6c7d8e9f", "hub", "2029-03-01T02:00:00Z"),
            "referral_id": None,
            "reason": "retention",
            "notify": {"amt": [REFERRAL], "ude": [REFERRAL]},
        },
    },
    "auditCheckpointSigned": {
        "headers": {
            "ce_id": "b1d5e4f6-7a8c-4d9e-9f0a-5b6c7d8e9f0a",
            "ce_source": "/audit",
            "ce_time": "2027-02-16T08:15:02Z",
            "ce_subject": "1024",
            "ce_partitionkey": ORIGIN,
        },
        "payload": {
            "origin": ORIGIN,
            "tree_size": 1024,
            "root_hash": "b567c0cbb2e85c295e6ade930e5bb349a4b9bee9489caa7d6b679dd46e82a711",
            "key": ORIGIN + "+8d561e83+AS3ATClO5frN85ydlTk7j8VAYznKlbAYOkwlC4WjlVSu",
            "note": (
                f"{ORIGIN}\n1024\ntWfAy7LoXCleat6TDluzSaS5vulInKp9a2ed1G6CpxE=\n"
                f"time 2027-02-16T08:15:02Z\n\n\u2014 {ORIGIN} "
                "jVYeg8rEGT06OHjuH2R9FuqLBlMqLolEuh/Zy6xU8YTeHbParvh2RYiLEd934LEQC8pZx2KGBl7ybvXAQysBg0kXpQU=\n"
            ),
        },
    },
}
