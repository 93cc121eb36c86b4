"""Simulated Jobcenter Duisburg (SGB II) for tests and demos.

It reports only milestones of the referral, never benefit details (§§ 67 ff SGB X).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from connectors.simulator import Progression, Step, create_simulator_app

KIND = "jobcenter"

PROGRESSIONS: dict[str, list[Step]] = {
    "jobcenter.integration": [
        (2.0, {"status": "accepted", "business_status": "REFERRAL_ACCEPTED"}),
        (4.0, {"status": "in-progress", "business_status": "FIRST_APPOINTMENT_HELD"}),
        (
            3.0,
            {"status": "in-progress", "business_status": "INTEGRATION_COURSE_OBLIGATION_ISSUED"},
        ),
        (6.0, {"status": "completed", "business_status": "CASE_CLOSED"}),
    ],
}


def build(*, time_scale: float = 1.0, **options: Any) -> FastAPI:
    """A simulated Jobcenter; ``options`` are those of ``create_simulator_app`` but kind."""
    progression = Progression(PROGRESSIONS, time_scale=time_scale)
    return create_simulator_app(kind=KIND, progression=progression, **options)
