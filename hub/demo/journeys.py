"""The scripted client journeys of ``hub demo``: who refers whom, in which order.

Each step is a referral one partner requests, either through the canonical API or in the
partner's native format; a step starts when the one before it has ended.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Step:
    label: str
    requester: str
    body: dict[str, Any] | None = None
    native_kind: str | None = None
    native: dict[str, Any] | None = None


@dataclass
class Journey:
    name: str
    person: dict[str, Any]
    steps: list[Step]
    person_id: str | None = None
    referral_ids: list[str] = field(default_factory=list)
    follow_ups: list[str] = field(default_factory=list)
    partial_equivalence: bool = False
    seen: set[tuple[str, str, str | None]] = field(default_factory=set)


def _example(kind: str, name: str) -> dict[str, Any]:
    text = resources.files("connectors").joinpath(f"{kind}/examples/{name}").read_text("utf-8")
    return dict(json.loads(text))


def electrician() -> Journey:
    """A skilled electrician from India: recognition at IHK FOSA, then a skilled-worker permit."""
    person = {"given_name": "Arjun", "family_name": "Sharma", "birth_date": "1991-09-14"}
    return Journey(
        "Elektriker aus Indien / electrician from India",
        person,
        [
            Step(
                "Anerkennung bei der IHK FOSA",
                "amt",
                {
                    "type": "recognition.assessment",
                    "performer": "ihk-fosa",
                    "payload": {
                        "reference_occupation": "Elektroniker/in für Energie- und Gebäudetechnik",
                        "country_of_qualification": "IN",
                    },
                },
            ),
            Step(
                "Aufenthaltserlaubnis als Fachkraft",
                "amt",
                {
                    "type": "residence.skilled-worker",
                    "performer": "amt",
                    "payload": {
                        "occupation": "Elektroniker",
                        "employer": "Stadtwerke-Dienstleister GmbH",
                    },
                },
            ),
        ],
    )


def student() -> Journey:
    """A master's student from China: admission at UDE, student permit, enrolment."""
    admission = {
        **_example("university", "inbound-zulassung.json"),
        "nachricht_id": str(uuid.uuid4()),
        "matrikelnummer": "ES012345601",
    }
    return Journey(
        "Masterstudentin aus China / master's student from China",
        {},
        [
            Step(
                "Zulassung an der UDE, Aufenthaltserlaubnis zum Studium",
                "ude",
                native_kind="university",
                native=admission,
            ),
            Step(
                "Einschreibung an der UDE bestätigen",
                "amt",
                {
                    "type": "university.enrolment-confirmation",
                    "performer": "ude",
                    "payload": {"semester": "2027S", "programme": "M.Sc. Computer Engineering"},
                },
            ),
        ],
    )


def nurse() -> Journey:
    """A nurse from Syria: Jobcenter, integration course, then recognition."""
    person = {"given_name": "Lina", "family_name": "Haddad", "birth_date": "1996-02-02"}
    return Journey(
        "Pflegefachfrau aus Syrien / nurse from Syria",
        person,
        [
            Step(
                "Überleitung an das Jobcenter, Integrationskurs",
                "amt",
                {
                    "type": "jobcenter.integration",
                    "performer": "jobcenter",
                    "payload": {"integration_course_needed": True},
                },
            ),
            Step(
                "Anerkennung bei der IHK FOSA",
                "jobcenter",
                {
                    "type": "recognition.assessment",
                    "performer": "ihk-fosa",
                    "payload": {
                        "reference_occupation": "Kauffrau im Gesundheitswesen",
                        "country_of_qualification": "SY",
                    },
                },
            ),
        ],
    )


def all_journeys() -> list[Journey]:
    """The three journeys, fresh."""
    return [electrician(), student(), nurse()]
