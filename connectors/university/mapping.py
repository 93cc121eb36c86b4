"""UDE student-registry records <-> canonical referral messages.

Inbound: an admission record (``ZULASSUNG``) refers an admitted international student to the
Amt for a student residence permit; an enrolment status record (``EINSCHREIBUNGSSTATUS``)
answers a ``university.enrolment-confirmation`` referral. The Matrikelnummer stays with UDE:
it becomes only the ``partner_reference`` of the person the university itself refers.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from connectors.base import ChangeStatus, CreateReferral, MappingError, Operation
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
from connectors.university.config import UniversityConfig
from schemas.lifecycle import Status
from schemas.messages import PersonErased, ReferralRequested

# Campus prefix (DU Duisburg, ES Essen), seven-digit student number, two-digit card counter.
_MATRIKELNUMMER = re.compile(r"^(DU|ES)\d{9}$")
_UDE_SEMESTER = re.compile(r"^(?:SoSe (?P<summer>\d{4})|WiSe (?P<winter>\d{4})/(?P<next>\d{2}))$")
_HUB_SEMESTER = re.compile(r"^(?P<year>\d{4})(?P<term>[SW])$")

CONFIRMATION = "university.enrolment-confirmation"
RESIDENCE = "residence.student"


def _matrikelnummer(value: str) -> str:
    if not _MATRIKELNUMMER.match(value):
        raise ValueError("not a UDE Matrikelnummer (DU or ES followed by 9 digits)")
    return value


def semester_to_hub(value: str) -> str:
    """A UDE semester code ("SoSe 2027", "WiSe 2027/28") as the hub's "2027S" / "2027W"."""
    found = _UDE_SEMESTER.match(value)
    if found and found["summer"]:
        return f"{found['summer']}S"
    if found and int(found["next"]) == (int(found["winter"]) + 1) % 100:
        return f"{found['winter']}W"
    raise ValueError("not a UDE semester code (SoSe 2027 or WiSe 2027/28)")


def semester_to_ude(value: str) -> str:
    """The hub's semester code ("2027W") in UDE style ("WiSe 2027/28")."""
    found = _HUB_SEMESTER.match(value)
    if not found:
        raise ValueError("not a hub semester code (e.g. 2027S)")
    year = int(found["year"])
    return f"SoSe {year}" if found["term"] == "S" else f"WiSe {year}/{(year + 1) % 100:02d}"


Matrikelnummer = Annotated[str, AfterValidator(_matrikelnummer)]
Semester = Annotated[str, AfterValidator(semester_to_hub)]


class Studiengang(NativeModel):
    titel: str = Field(min_length=1, max_length=150)
    abschluss: str = Field(min_length=1, max_length=40)


class Zulassung(NativeModel):
    """Admission record: the registry refers an admitted student to the Amt."""

    meldungsart: Literal["ZULASSUNG"]
    nachricht_id: UUID
    matrikelnummer: Matrikelnummer
    vorname: PersonName | None = None
    nachname: PersonName
    geburtsdatum: IsoDate
    studiengang: Studiengang
    semester: Semester
    zulassungsdatum: IsoDate


class Einschreibungsstatus(NativeModel):
    """Enrolment status record answering an enrolment-confirmation referral."""

    meldungsart: Literal["EINSCHREIBUNGSSTATUS"]
    nachricht_id: UUID
    vermittlung_id: UUID
    status: str = Field(min_length=1, max_length=64)
    semester: Semester | None = None
    zeitpunkt: Timestamp | None = None


def _confirmed(business_status: str, outcome: str) -> StatusCode:
    return StatusCode(Status.COMPLETED, business_status=business_status, outcome=outcome)


#: The answer to an enrolment confirmation is the registry's fact at that moment, so every
#: answer (including a negative one) completes the referral with an outcome; the Amt asks
#: again with a new referral next semester.
STATUS_CODES: dict[str, StatusCode] = {
    "ANFRAGE_ERHALTEN": StatusCode(Status.RECEIVED),
    "IMMATRIKULIERT": _confirmed("ENROLMENT_COMPLETED", "enrolled"),
    "RUECKGEMELDET": _confirmed("RE_REGISTERED", "re-registered"),
    "NICHT_RUECKGEMELDET": _confirmed("RE_REGISTRATION_MISSING", "not-re-registered"),
    "STUDIENVERLAUF_BESCHEINIGT": _confirmed("PROGRESS_CERTIFICATE_ISSUED", "progress-certified"),
    "STUDIENGANGWECHSEL": _confirmed("PROGRAMME_CHANGED", "programme-changed"),
    "EXMATRIKULIERT": _confirmed("EXMATRICULATED", "exmatriculated"),
    "NICHT_BEKANNT": StatusCode(Status.REJECTED, reason="not-responsible"),
}

_PERSON_NAMES = {
    "person.given_name": "vorname",
    "person.family_name": "nachname",
    "person.partner_reference": "matrikelnummer",
    "payload.programme": "studiengang",
    "payload.semester": "semester",
    "payload.admission_date": "zulassungsdatum",
}
_STATUS_NAMES = {"occurred_at": "zeitpunkt", "note": "semester"}


class UniversityMapper:
    """UDE registry records <-> canonical messages; implements both mapper protocols."""

    def __init__(self, config: UniversityConfig) -> None:
        self.config = config

    def to_operations(self, native: dict[str, Any]) -> list[Operation]:
        """The operations one registry record stands for; raises MappingError."""
        record = as_object(native)
        kind = message_type(record, "meldungsart", _INBOUND)
        if kind == "ZULASSUNG":
            return [self._admission(parse(Zulassung, record))]
        return _enrolment_status(parse(Einschreibungsstatus, record))

    def to_native(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """The registry's JSON for one routed event; raises MappingError."""
        event = parse_event(event_type, data)
        if isinstance(event, PersonErased):
            return erasure_notice(event)
        if isinstance(event, ReferralRequested):
            return _confirmation_request(event)
        return status_notice(event)

    def _admission(self, record: Zulassung) -> CreateReferral:
        data = {
            "type": RESIDENCE,
            "performer": self.config.default_performer,
            "person": {
                "given_name": record.vorname,
                "family_name": record.nachname,
                "birth_date": record.geburtsdatum,
                "partner_reference": record.matrikelnummer,
            },
            "payload": {
                "programme": f"{record.studiengang.abschluss} {record.studiengang.titel}",
                "semester": record.semester,
                "admission_date": record.zulassungsdatum.isoformat(),
            },
        }
        return create_referral(data, key=str(record.nachricht_id), names=_PERSON_NAMES)


_INBOUND = {"ZULASSUNG": Zulassung, "EINSCHREIBUNGSSTATUS": Einschreibungsstatus}


def _enrolment_status(record: Einschreibungsstatus) -> list[Operation]:
    entry = lookup(STATUS_CODES, record.status, "status")
    key = str(record.nachricht_id)
    note = f"Semester {record.semester}" if record.semester else None
    final = change_status(
        record.vermittlung_id,
        entry,
        key=key,
        occurred_at=record.zeitpunkt,
        note=note,
        names=_STATUS_NAMES,
    )
    if entry.status != Status.COMPLETED:
        return [final]
    # The registry has no "accepted" step: a confirmation implies it, and the lifecycle only
    # completes accepted work. Accepting an accepted referral is a harmless self-update.
    accept = ChangeStatus(
        referral_id=record.vermittlung_id,
        body=final.body.model_copy(
            update={"status": Status.ACCEPTED, "business_status": None, "outcome": None}
        ),
        idempotency_key=f"{key}:accept",
    )
    return [accept, final]


def _confirmation_request(event: ReferralRequested) -> dict[str, Any]:
    if event.referral_type != CONFIRMATION:
        raise wrong_type({CONFIRMATION})
    person = event.person
    return compact(
        {
            "meldungsart": "BESTAETIGUNGSANFRAGE",
            "nachricht_id": str(event.event_id),
            "vermittlung_id": referral_id_of(event),
            "person_pseudonym": event.person_id,
            "anfragende_stelle": event.requester,
            "vorname": person.given_name if person else None,
            "nachname": person.family_name if person else None,
            "geburtsdatum": iso(person.birth_date) if person else None,
            "semester": _ude_semester(event.payload.get("semester")),
            "studiengang": event.payload.get("programme"),
            "rechtsgrundlage": event.legal_basis,
            "angefragt_am": event.occurred_at.isoformat(),
        }
    )


def _ude_semester(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return semester_to_ude(str(value))
    except ValueError as exc:
        raise MappingError("data.payload.semester", str(exc)) from None
