"""Jobcenter referral records <-> canonical referral messages.

Inbound: a referral of a customer to the Talent Center (``ZUWEISUNG`` ->
``counselling.talent-center``) and a status record (``VERMITTLUNGSSTAND``) on a
``jobcenter.integration`` referral the Jobcenter performs. The customer number may be used
only for the Jobcenter's own purposes (§ 51a SGB II): it becomes only the
``partner_reference`` of the person the Jobcenter itself refers; the household (BG) number is
accepted and dropped; benefit data is refused outright.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from connectors.base import CreateReferral, MappingError, Operation
from connectors.jobcenter.config import JobcenterConfig
from connectors.native import (
    IsoDate,
    NativeModel,
    PersonName,
    StatusCode,
    Timestamp,
    as_object,
    change_status,
    compact,
    create_referral,
    erasure_notice,
    iso,
    lookup,
    message_type,
    parse,
    parse_event,
    referral_id_of,
    status_notice,
    wrong_type,
)
from schemas.lifecycle import Status
from schemas.messages import PersonErased, ReferralRequested

COUNSELLING = "counselling.talent-center"
INTEGRATION = "jobcenter.integration"

# Three digits (agency), "D", six digits: the BA customer-number layout.
_KUNDENNUMMER = re.compile(r"^\d{3}D\d{6}$")

#: Benefit and household data: social data that must not leave the Jobcenter (§ 35 SGB I,
#: § 67d SGB X). Refused, not dropped, so the sending system learns to stop sending it.
BENEFIT_FIELDS = frozenset(
    {
        "leistungen",
        "regelbedarf",
        "mehrbedarf",
        "kdu",
        "kosten_der_unterkunft",
        "einkommen",
        "vermoegen",
        "sanktionen",
        "leistungsminderung",
        "bedarfsgemeinschaft",
    }
)


def _kundennummer(value: str) -> str:
    if not _KUNDENNUMMER.match(value):
        raise ValueError("not a Jobcenter customer number (e.g. 123D456789)")
    return value


Kundennummer = Annotated[str, AfterValidator(_kundennummer)]


class Kunde(NativeModel):
    vorname: PersonName | None = None
    nachname: PersonName
    geburtsdatum: IsoDate | None = None


class Zuweisung(NativeModel):
    """Referral of a Jobcenter customer to the Talent Center for counselling."""

    meldungsart: Literal["ZUWEISUNG"]
    nachricht_id: UUID
    kundennummer: Kundennummer
    # Accepted because the Jobcenter's software always exports it; never mapped (§ 51a SGB II).
    bg_nummer: str | None = Field(None, max_length=20)
    kunde: Kunde
    anliegen: str | None = Field(None, min_length=1, max_length=500)
    sprache: str | None = None


class Vermittlungsstand(NativeModel):
    """Status record on a jobcenter.integration referral (no free text: it may hold social data)."""

    meldungsart: Literal["VERMITTLUNGSSTAND"]
    nachricht_id: UUID
    vermittlung_id: UUID
    status: str = Field(min_length=1, max_length=64)
    zeitpunkt: Timestamp | None = None


STATUS_CODES: dict[str, StatusCode] = {
    "ZUWEISUNG_ANGENOMMEN": StatusCode(Status.ACCEPTED, "REFERRAL_ACCEPTED"),
    "ERSTGESPRAECH_ERFOLGT": StatusCode(Status.IN_PROGRESS, "FIRST_APPOINTMENT_HELD"),
    "KOOPERATIONSPLAN_VEREINBART": StatusCode(Status.IN_PROGRESS, "COOPERATION_PLAN_AGREED"),
    "INTEGRATIONSKURS_VERPFLICHTET": StatusCode(
        Status.IN_PROGRESS, "INTEGRATION_COURSE_OBLIGATION_ISSUED"
    ),
    "ANERKENNUNG_GEFOERDERT": StatusCode(Status.IN_PROGRESS, "RECOGNITION_FUNDING_APPROVED"),
    "ARBEITSAUFNAHME": StatusCode(
        Status.COMPLETED, "PLACED_IN_EMPLOYMENT", outcome="placed-in-employment"
    ),
    "FALL_ABGESCHLOSSEN": StatusCode(Status.COMPLETED, "CASE_CLOSED", outcome="case-closed"),
    "NICHT_ZUSTAENDIG": StatusCode(Status.REJECTED, reason="not-responsible"),
}

_STATUS_NAMES = {"occurred_at": "zeitpunkt"}
_CREATE_NAMES = {
    "person.given_name": "kunde.vorname",
    "person.family_name": "kunde.nachname",
    "person.birth_date": "kunde.geburtsdatum",
    "person.partner_reference": "kundennummer",
    "payload.topic": "anliegen",
    "payload.preferred_language": "sprache",
}


def refuse_benefit_data(record: dict[str, Any], prefix: str = "") -> None:
    """Raise MappingError on the first benefit field, at any depth of the record."""
    for key, value in record.items():
        path = f"{prefix}{key}"
        if str(key).lower() in BENEFIT_FIELDS:
            raise MappingError(path, "benefit data must not be sent to the hub (§ 35 SGB I)")
        if isinstance(value, dict):
            refuse_benefit_data(value, f"{path}.")


class JobcenterMapper:
    """Jobcenter records <-> canonical messages; implements both mapper protocols."""

    def __init__(self, config: JobcenterConfig) -> None:
        self.config = config

    def to_operations(self, native: dict[str, Any]) -> list[Operation]:
        """The operations one Jobcenter record stands for; raises MappingError."""
        record = as_object(native)
        refuse_benefit_data(record)
        kind = message_type(record, "meldungsart", _INBOUND)
        if kind == "ZUWEISUNG":
            return [self._counselling(parse(Zuweisung, record))]
        return [_status(parse(Vermittlungsstand, record))]

    def to_native(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """The Jobcenter's JSON for one routed event; raises MappingError."""
        event = parse_event(event_type, data)
        if isinstance(event, PersonErased):
            return erasure_notice(event)
        if isinstance(event, ReferralRequested):
            return _integration_request(event)
        return status_notice(event)

    def _counselling(self, record: Zuweisung) -> CreateReferral:
        data = {
            "type": COUNSELLING,
            "performer": self.config.default_performer,
            "person": {
                "given_name": record.kunde.vorname,
                "family_name": record.kunde.nachname,
                "birth_date": record.kunde.geburtsdatum,
                "partner_reference": record.kundennummer,
            },
            "payload": compact({"topic": record.anliegen, "preferred_language": record.sprache}),
        }
        return create_referral(data, key=str(record.nachricht_id), names=_CREATE_NAMES)


_INBOUND = {"ZUWEISUNG": Zuweisung, "VERMITTLUNGSSTAND": Vermittlungsstand}


def _status(record: Vermittlungsstand) -> Operation:
    entry = lookup(STATUS_CODES, record.status, "status")
    return change_status(
        record.vermittlung_id,
        entry,
        key=str(record.nachricht_id),
        occurred_at=record.zeitpunkt,
        names=_STATUS_NAMES,
    )


def _integration_request(event: ReferralRequested) -> dict[str, Any]:
    if event.referral_type != INTEGRATION:
        raise wrong_type({INTEGRATION})
    person = event.person
    return compact(
        {
            "meldungsart": "UEBERLEITUNG",
            "nachricht_id": str(event.event_id),
            "vermittlung_id": referral_id_of(event),
            "person_pseudonym": event.person_id,
            "anfragende_stelle": event.requester,
            "kunde": {
                "vorname": person.given_name if person else None,
                "nachname": person.family_name if person else None,
                "geburtsdatum": iso(person.birth_date) if person else None,
            },
            "anlass": event.payload.get("reason"),
            "integrationskurs_erforderlich": event.payload.get("integration_course_needed"),
            "rechtsgrundlage": event.legal_basis,
            "angefragt_am": event.occurred_at.isoformat(),
        }
    )
