"""The Amt's XAusländer-style messages <-> canonical referral messages.

Every message is an envelope ``{"nachrichtenkopf": {...}, "inhalt": {...}}`` as in the XÖV
standards the Ausländerbehörde already speaks; the message-type codes are the hub's own
(``talenthub.*``), since XAusländer has none for referrals. The nachrichtenUUID is the
idempotency key inbound and the event id outbound, so both sides deduplicate on one value.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from connectors.authority.config import AuthorityConfig
from connectors.base import MappingError, Operation
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
    iso,
    lookup,
    parse,
    parse_event,
    referral_id_of,
)
from schemas.catalogue import load_catalogue
from schemas.lifecycle import Status
from schemas.messages import (
    PartnerId,
    PersonErased,
    PersonId,
    ReferralRequested,
    ReferralStatusChanged,
)

KIND = "authority"
ANFRAGE = "talenthub.referral.anfrage.0101"
STATUS = "talenthub.referral.status.0201"
ZUWEISUNG = "talenthub.referral.zuweisung.0301"
STATUSMITTEILUNG = "talenthub.referral.statusmitteilung.0401"
LOESCHMITTEILUNG = "talenthub.person.loeschmitteilung.0501"


def _code(status: Status, business_status: str | None = None, **extra: str) -> StatusCode:
    return StatusCode(status, business_status, **extra)


#: The Amt's status codes. Performer codes for residence, adaptation and counselling
#: referrals, then the requester's own (cancellation, correction).
STATUS_CODES: dict[str, StatusCode] = {
    "EINGANG": _code(Status.RECEIVED),
    "TERMIN_VEREINBART": _code(Status.ACCEPTED, "APPOINTMENT_BOOKED"),
    # A missed appointment keeps the referral accepted until a new one is booked.
    "TERMIN_NICHT_WAHRGENOMMEN": _code(Status.ACCEPTED, "APPOINTMENT_MISSED"),
    "ANTRAG_EINGEGANGEN": _code(Status.IN_PROGRESS, "APPLICATION_RECEIVED"),
    "UNTERLAGEN_NACHGEFORDERT": _code(
        Status.ON_HOLD, "DOCUMENTS_REQUESTED", reason="awaiting-client-documents"
    ),
    "FIKTIONSBESCHEINIGUNG_AUSGESTELLT": _code(Status.IN_PROGRESS, "FIKTIONSBESCHEINIGUNG_ISSUED"),
    # Waiting for the Bundesagentur für Arbeit pauses the Amt's own service clock.
    "BA_ZUSTIMMUNG_ANGEFRAGT": _code(
        Status.ON_HOLD, "BA_CONSENT_REQUESTED", reason="awaiting-third-party"
    ),
    "BA_ZUSTIMMUNG_ERTEILT": _code(Status.IN_PROGRESS, "BA_CONSENT_GRANTED"),
    # Consent is deemed granted when the BA asks nothing within two weeks (one if accelerated).
    "BA_ZUSTIMMUNG_FINGIERT": _code(Status.IN_PROGRESS, "BA_CONSENT_DEEMED"),
    # The BA's refusal is an input to the Amt's decision, not the decision itself.
    "BA_ZUSTIMMUNG_VERSAGT": _code(Status.IN_PROGRESS, "BA_CONSENT_REFUSED"),
    # The eAT card is ready before the permit is handed over, which completes the referral.
    "EAT_ABHOLBEREIT": _code(Status.IN_PROGRESS, "EAT_READY_FOR_PICKUP"),
    "AUFENTHALTSTITEL_ERTEILT": _code(Status.COMPLETED, "PERMIT_GRANTED", outcome="granted"),
    "AUFENTHALTSTITEL_VERSAGT": _code(Status.COMPLETED, "PERMIT_REFUSED", outcome="refused"),
    "ANPASSUNGSQUALIFIZIERUNG_BEGONNEN": _code(
        Status.IN_PROGRESS, "ADAPTATION_QUALIFICATION_STARTED"
    ),
    "ANPASSUNGSQUALIFIZIERUNG_ABGESCHLOSSEN": _code(
        Status.IN_PROGRESS, "ADAPTATION_QUALIFICATION_COMPLETED"
    ),
    "FOLGEANTRAG_EINGEGANGEN": _code(
        Status.COMPLETED, "FOLLOW_UP_APPLICATION_RECEIVED", outcome="follow-up-application"
    ),
    "BERATUNG_DURCHGEFUEHRT": _code(
        Status.COMPLETED, "COUNSELLING_SESSION_HELD", outcome="counselled"
    ),
    "NICHT_ZUSTAENDIG": _code(Status.REJECTED, reason="not-responsible"),
    "NICHT_BERECHTIGT": _code(Status.REJECTED, reason="not-eligible"),
    "KEINE_EINWILLIGUNG": _code(Status.REJECTED, reason="no-consent"),
    # The client did not cooperate: the service could not be carried out.
    "NICHT_MITGEWIRKT": _code(Status.FAILED),
    "STORNIERT_ZURUECKGENOMMEN": _code(Status.CANCELLED, reason="withdrawn-by-client"),
    "STORNIERT_ABGEGEBEN": _code(Status.CANCELLED, reason="transferred"),
    "FEHLERHAFT_ERFASST": _code(Status.ENTERED_IN_ERROR),
}


class Nachrichtenkopf(NativeModel):
    nachrichtenUUID: UUID
    nachrichtentyp: str = Field(min_length=1, max_length=100)
    erstellungszeitpunkt: Timestamp
    absender: str = Field(min_length=1, max_length=64)
    empfaenger: str = Field(min_length=1, max_length=64)


class Nachricht(NativeModel):
    nachrichtenkopf: Nachrichtenkopf
    inhalt: dict[str, Any]


class PersonAngaben(NativeModel):
    pseudonym: PersonId | None = None
    vorname: PersonName | None = None
    familienname: PersonName | None = None
    geburtsdatum: IsoDate | None = None
    # The ABH's own file number; stays with the Amt like every partner reference.
    aktenzeichen: str | None = Field(None, min_length=1, max_length=64)


class Anfrage(NativeModel):
    """0101: the Amt requests a referral of any type the catalogue lets it request."""

    vermittlungsart: str = Field(min_length=1, max_length=64)
    leistungserbringer: PartnerId
    person: PersonAngaben
    fachdaten: dict[str, Any] = Field(default_factory=dict)
    korrelationsID: UUID | None = None


class Statusangabe(NativeModel):
    code: str = Field(min_length=1, max_length=64)
    zeitpunkt: Timestamp | None = None
    bemerkung: Note | None = None


class Statusmeldung(NativeModel):
    """0201: the Amt reports a status on a referral it performs (or cancels one it requested)."""

    vermittlungID: UUID
    status: Statusangabe


_CREATE_NAMES = {
    "type": "inhalt.vermittlungsart",
    "performer": "inhalt.leistungserbringer",
    "person": "inhalt.person",
    "person.id": "inhalt.person.pseudonym",
    "person.given_name": "inhalt.person.vorname",
    "person.family_name": "inhalt.person.familienname",
    "person.birth_date": "inhalt.person.geburtsdatum",
    "person.partner_reference": "inhalt.person.aktenzeichen",
    "payload.": "inhalt.fachdaten.",
    "correlation_id": "inhalt.korrelationsID",
}
_STATUS_NAMES = {"occurred_at": "inhalt.status.zeitpunkt", "note": "inhalt.status.bemerkung"}


class AuthorityMapper:
    """XAusländer-style messages <-> canonical messages; implements both mapper protocols."""

    def __init__(self, config: AuthorityConfig) -> None:
        self.config = config

    def to_operations(self, native: dict[str, Any]) -> list[Operation]:
        """The operations one message of the Amt stands for; raises MappingError."""
        message = parse(Nachricht, as_object(native))
        head = message.nachrichtenkopf
        self._check_header(head)
        key = str(head.nachrichtenUUID)
        if head.nachrichtentyp == ANFRAGE:
            return [_request(parse(Anfrage, message.inhalt, prefix="inhalt"), key)]
        return [_status(parse(Statusmeldung, message.inhalt, prefix="inhalt"), key)]

    def to_native(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """The XAusländer-style message for one routed event; raises MappingError."""
        event = parse_event(event_type, data)
        if isinstance(event, PersonErased):
            return self._envelope(event, LOESCHMITTEILUNG, _erasure_notice(event))
        if isinstance(event, ReferralRequested):
            return self._envelope(event, ZUWEISUNG, _assignment(event))
        return self._envelope(event, STATUSMITTEILUNG, _status_notice(event))

    def _check_header(self, head: Nachrichtenkopf) -> None:
        if head.nachrichtentyp not in (ANFRAGE, STATUS):
            raise MappingError(
                "nachrichtenkopf.nachrichtentyp",
                f"unknown message type; expected {ANFRAGE} or {STATUS}",
            )
        if head.absender != self.config.behoerdenkennung:
            raise MappingError("nachrichtenkopf.absender", "unknown sender")
        # A misaddressed message is refused, as XAusländer receivers do, not silently taken.
        if head.empfaenger != self.config.hub_kennung:
            raise MappingError("nachrichtenkopf.empfaenger", "not addressed to the hub")

    def _envelope(
        self,
        event: ReferralRequested | ReferralStatusChanged | PersonErased,
        message_type: str,
        inhalt: dict[str, Any],
    ) -> dict[str, Any]:
        head = {
            "nachrichtenUUID": str(event.event_id),
            "nachrichtentyp": message_type,
            "erstellungszeitpunkt": event.recorded_at.isoformat(),
            "absender": self.config.hub_kennung,
            "empfaenger": self.config.behoerdenkennung,
        }
        return {"nachrichtenkopf": head, "inhalt": compact(inhalt)}


def _request(anfrage: Anfrage, key: str) -> Operation:
    rtype = load_catalogue().get(anfrage.vermittlungsart)
    if rtype is None:
        raise MappingError("inhalt.vermittlungsart", "unknown referral type")
    if KIND not in rtype.requester:
        raise MappingError("inhalt.vermittlungsart", "the authority may not request this type")
    person = anfrage.person
    data = {
        "type": anfrage.vermittlungsart,
        "performer": anfrage.leistungserbringer,
        "person": {
            "id": person.pseudonym,
            "given_name": person.vorname,
            "family_name": person.familienname,
            "birth_date": person.geburtsdatum,
            "partner_reference": person.aktenzeichen,
        },
        "payload": anfrage.fachdaten,
        "correlation_id": anfrage.korrelationsID,
    }
    return create_referral(data, key=key, names=_CREATE_NAMES)


def _status(meldung: Statusmeldung, key: str) -> Operation:
    entry = lookup(STATUS_CODES, meldung.status.code, "inhalt.status.code")
    return change_status(
        meldung.vermittlungID,
        entry,
        key=key,
        occurred_at=meldung.status.zeitpunkt,
        note=meldung.status.bemerkung,
        names=_STATUS_NAMES,
    )


def _assignment(event: ReferralRequested) -> dict[str, Any]:
    person = event.person
    return {
        "vermittlungID": referral_id_of(event),
        "vermittlungsart": event.referral_type,
        "anfragendeStelle": event.requester,
        "leistungserbringer": event.performer,
        "personPseudonym": event.person_id,
        "person": {
            "vorname": person.given_name if person else None,
            "familienname": person.family_name if person else None,
            "geburtsdatum": iso(person.birth_date) if person else None,
        },
        "fachdaten": event.payload or None,
        "zweck": event.purpose,
        "rechtsgrundlage": event.legal_basis,
        "korrelationsID": str(event.correlation_id),
        "anfragezeitpunkt": event.occurred_at.isoformat(),
    }


def _erasure_notice(event: PersonErased) -> dict[str, Any]:
    """The hub erased the person (Art. 19 GDPR): the Amt's own referrals with them."""
    return {
        "personPseudonym": event.person_id,
        "vermittlungIDs": [str(i) for ids in event.notify.values() for i in ids],
        "grund": event.reason,
        "zeitpunkt": event.occurred_at.isoformat(),
    }


def _status_notice(event: ReferralStatusChanged) -> dict[str, Any]:
    return {
        "vermittlungID": referral_id_of(event),
        "vermittlungsart": event.referral_type,
        "gemeldetVon": event.acting_partner,
        "vorherigerStatus": event.from_status.value,
        "status": event.status.value,
        "fachstatus": event.business_status,
        "grund": event.reason,
        "ergebnis": event.outcome,
        "bemerkung": event.note,
        "zeitpunkt": event.occurred_at.isoformat(),
        "korrelationsID": str(event.correlation_id),
    }
