"""Simulated UDE student registry for tests and demos: confirms enrolments the Amt asks about."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from connectors.simulator import Progression, Step, create_simulator_app

KIND = "university"

PROGRESSIONS: dict[str, list[Step]] = {
    "university.enrolment-confirmation": [
        (2.0, {"status": "accepted"}),
        (
            4.0,
            {
                "status": "completed",
                "business_status": "ENROLMENT_COMPLETED",
                "outcome": "enrolled",
            },
        ),
    ],
}


def build(*, time_scale: float = 1.0, **options: Any) -> FastAPI:
    """A simulated university; ``options`` are those of ``create_simulator_app`` but kind."""
    progression = Progression(PROGRESSIONS, time_scale=time_scale)
    return create_simulator_app(kind=KIND, progression=progression, **options)
