"""IHK FOSA / HWK recognition case records <-> canonical referral messages.

Inbound: a procedure status record (``VERFAHRENSSTAND``) on a ``recognition.assessment``
referral the chamber performs, and a follow-up request (``ANPASSUNGSQUALIFIZIERUNG``) after a
partial equivalence, which asks the Amt for a ``recognition.adaptation`` referral. The
Aktenzeichen (the chamber's file number) stays with the chamber: it becomes only the
``partner_reference`` of the person in a referral the chamber itself requests.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from connectors.base import CreateReferral, MappingError, Operation
from connectors.chamber.config import ChamberConfig
from connectors.native import (
    IsoDate,
    NativeModel,
    Note,
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
from schemas.messages import PersonErased, PersonId, ReferralRequested

ASSESSMENT = "recognition.assessment"
ADAPTATION = "recognition.adaptation"


class Antragsteller(NativeModel):
    vorname: PersonName | None = None
    nachname: PersonName
    geburtsdatum: IsoDate | None = None


class Verfahrensstand(NativeModel):
    """Procedure status record on a recognition case."""

    meldungsart: Literal["VERFAHRENSSTAND"]
    nachricht_id: UUID
    aktenzeichen: str = Field(min_length=1, max_length=40)
    vermittlung_id: UUID
    status: str = Field(min_length=1, max_length=64)
    zeitpunkt: Timestamp | None = None
    bemerkung: Note | None = None


class Anpassungsqualifizierung(NativeModel):
    """Follow-up request after a partial equivalence: the Amt should advise on adaptation."""

    meldungsart: Literal["ANPASSUNGSQUALIFIZIERUNG"]
    nachricht_id: UUID
    aktenzeichen: str = Field(min_length=1, max_length=40)
    vermittlung_id: UUID
    person_pseudonym: PersonId | None = None
    antragsteller: Antragsteller
    referenzberuf: str = Field(min_length=1, max_length=200)
    bescheiddatum: IsoDate


def _decision(business_status: str, outcome: str) -> StatusCode:
    # A negative decision is a decision: completed with an outcome, not failed (domain.md).
    return StatusCode(Status.COMPLETED, business_status=business_status, outcome=outcome)


STATUS_CODES: dict[str, StatusCode] = {
    "ANTRAG_EINGEGANGEN": StatusCode(Status.RECEIVED, "APPLICATION_RECEIVED"),
    "EINGANG_BESTAETIGT": StatusCode(Status.ACCEPTED, "RECEIPT_CONFIRMED"),
    # The statutory decision clock pauses while documents are outstanding.
    "UNTERLAGEN_NACHGEFORDERT": StatusCode(
        Status.ON_HOLD, "DOCUMENTS_REQUESTED", reason="awaiting-client-documents"
    ),
    "AKTE_VOLLSTAENDIG": StatusCode(Status.IN_PROGRESS, "FILE_COMPLETE"),
    "QUALIFIKATIONSANALYSE_TERMINIERT": StatusCode(
        Status.IN_PROGRESS, "QUALIFICATION_ANALYSIS_SCHEDULED"
    ),
    "BESCHEID_VOLLE_GLEICHWERTIGKEIT": _decision("DECISION_FULL_EQUIVALENCE", "full-equivalence"),
    "BESCHEID_TEILWEISE_GLEICHWERTIGKEIT": _decision(
        "DECISION_PARTIAL_EQUIVALENCE", "partial-equivalence"
    ),
    "BESCHEID_KEINE_GLEICHWERTIGKEIT": _decision("DECISION_NO_EQUIVALENCE", "no-equivalence"),
    "ANTRAG_ABGELEHNT": StatusCode(Status.REJECTED, "APPLICATION_REJECTED", reason="not-eligible"),
    # Only the requester may cancel; a client withdrawing at the chamber means the service
    # could not be carried out, which the performer reports as failed.
    "ANTRAG_ZURUECKGENOMMEN": StatusCode(Status.FAILED, "APPLICATION_WITHDRAWN"),
}

_STATUS_NAMES = {"occurred_at": "zeitpunkt", "note": "bemerkung"}
_CREATE_NAMES = {
    "person.id": "person_pseudonym",
    "person.given_name": "antragsteller.vorname",
    "person.family_name": "antragsteller.nachname",
    "person.birth_date": "antragsteller.geburtsdatum",
    "person.partner_reference": "aktenzeichen",
    "payload.reference_occupation": "referenzberuf",
    "payload.decision_date": "bescheiddatum",
    "payload.follow_up_of": "vermittlung_id",
}


class ChamberMapper:
    """Chamber case records <-> canonical messages; implements both mapper protocols."""

    def __init__(self, config: ChamberConfig) -> None:
        self.config = config
        self._aktenzeichen = re.compile(config.aktenzeichen_pattern)

    def to_operations(self, native: dict[str, Any]) -> list[Operation]:
        """The operations one case record stands for; raises MappingError."""
        record = as_object(native)
        kind = message_type(record, "meldungsart", _INBOUND)
        if kind == "VERFAHRENSSTAND":
            return [self._status(parse(Verfahrensstand, record))]
        return [self._adaptation(parse(Anpassungsqualifizierung, record))]

    def to_native(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """The chamber's JSON for one routed event; raises MappingError."""
        event = parse_event(event_type, data)
        if isinstance(event, PersonErased):
            return erasure_notice(event)
        if isinstance(event, ReferralRequested):
            return self._assessment_request(event)
        return status_notice(event)

    def _check_aktenzeichen(self, aktenzeichen: str) -> None:
        if not self._aktenzeichen.match(aktenzeichen):
            raise MappingError("aktenzeichen", "not a file number of this chamber")

    def _status(self, record: Verfahrensstand) -> Operation:
        self._check_aktenzeichen(record.aktenzeichen)
        # The note travels to the requester; the file number must stay with the chamber.
        if record.bemerkung and record.aktenzeichen in record.bemerkung:
            raise MappingError("bemerkung", "must not contain the Aktenzeichen")
        entry = lookup(STATUS_CODES, record.status, "status")
        return change_status(
            record.vermittlung_id,
            entry,
            key=str(record.nachricht_id),
            occurred_at=record.zeitpunkt,
            note=record.bemerkung,
            names=_STATUS_NAMES,
        )

    def _adaptation(self, record: Anpassungsqualifizierung) -> CreateReferral:
        self._check_aktenzeichen(record.aktenzeichen)
        person = record.antragsteller
        data = {
            "type": ADAPTATION,
            "performer": self.config.default_performer,
            "person": {
                "id": record.person_pseudonym,
                "given_name": person.vorname,
                "family_name": person.nachname,
                "birth_date": person.geburtsdatum,
                "partner_reference": record.aktenzeichen,
            },
            "payload": {
                "reference_occupation": record.referenzberuf,
                "decision_date": record.bescheiddatum.isoformat(),
                "follow_up_of": str(record.vermittlung_id),
            },
        }
        return create_referral(data, key=str(record.nachricht_id), names=_CREATE_NAMES)

    def _assessment_request(self, event: ReferralRequested) -> dict[str, Any]:
        if event.referral_type != ASSESSMENT:
            raise wrong_type({ASSESSMENT})
        person = event.person
        payload = event.payload
        return compact(
            {
                "meldungsart": "ANERKENNUNGSANFRAGE",
                "nachricht_id": str(event.event_id),
                "vermittlung_id": referral_id_of(event),
                "person_pseudonym": event.person_id,
                "kammer": self.config.chamber_id,
                "anfragende_stelle": event.requester,
                "antragsteller": {
                    "vorname": person.given_name if person else None,
                    "nachname": person.family_name if person else None,
                    "geburtsdatum": iso(person.birth_date) if person else None,
                },
                "referenzberuf": payload.get("reference_occupation"),
                "berufsabschluss": payload.get("qualification_title"),
                "ausbildungsstaat": payload.get("country_of_qualification"),
                "beschleunigtes_verfahren": payload.get("accelerated"),
                "rechtsgrundlage": event.legal_basis,
                "angefragt_am": event.occurred_at.isoformat(),
            }
        )


_INBOUND = {
    "VERFAHRENSSTAND": Verfahrensstand,
    "ANPASSUNGSQUALIFIZIERUNG": Anpassungsqualifizierung,
}
