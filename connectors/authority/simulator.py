"""Simulated Amt für Integration und Einwanderungsservice (ABH + Talent Center desk).

Residence permits follow the Amt's usual path: appointment, application, a
Fiktionsbescheinigung (the certificate that the current stay counts as lawful while the
application is pending, § 81 AufenthG), then the permit. Skilled workers also wait for the
Bundesagentur's consent (§ 39 AufenthG), reported as on-hold awaiting a third party.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from connectors.simulator import Progression, Step, create_simulator_app

KIND = "authority"

_PERMIT_GRANTED = {"status": "completed", "business_status": "PERMIT_GRANTED", "outcome": "granted"}

PROGRESSIONS: dict[str, list[Step]] = {
    "residence.student": [
        (2.0, {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"}),
        (4.0, {"status": "in-progress", "business_status": "APPLICATION_RECEIVED"}),
        (2.0, {"status": "in-progress", "business_status": "FIKTIONSBESCHEINIGUNG_ISSUED"}),
        (8.0, _PERMIT_GRANTED),
    ],
    "residence.skilled-worker": [
        (2.0, {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"}),
        (4.0, {"status": "in-progress", "business_status": "APPLICATION_RECEIVED"}),
        (
            2.0,
            {
                "status": "on-hold",
                "business_status": "BA_CONSENT_REQUESTED",
                "reason": "awaiting-third-party",
            },
        ),
        (6.0, {"status": "in-progress", "business_status": "BA_CONSENT_GRANTED"}),
        (2.0, {"status": "in-progress", "business_status": "FIKTIONSBESCHEINIGUNG_ISSUED"}),
        (6.0, _PERMIT_GRANTED),
    ],
    "counselling.talent-center": [
        (2.0, {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"}),
        (5.0, {"status": "completed", "business_status": "COUNSELLING_SESSION_HELD"}),
    ],
    "recognition.adaptation": [
        (2.0, {"status": "accepted"}),
        (4.0, {"status": "in-progress", "business_status": "ADAPTATION_QUALIFICATION_STARTED"}),
        (8.0, {"status": "completed", "business_status": "ADAPTATION_QUALIFICATION_COMPLETED"}),
    ],
}


def build(*, time_scale: float = 1.0, **options: Any) -> FastAPI:
    """A simulated Amt; ``options`` are those of ``create_simulator_app`` but kind."""
    progression = Progression(PROGRESSIONS, time_scale=time_scale)
    return create_simulator_app(kind=KIND, progression=progression, **options)
