"""Building blocks shared by the partner-kind mappings.

Native formats are strict like the API bodies (unknown fields are refused), so a partner
learns at once that it sent something the hub must not receive. Every problem becomes a
``MappingError`` naming the native field; error messages never echo the offending value,
which may be personal data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from connectors.base import ChangeStatus, CreateReferral, MappingError
from schemas.catalogue import load_catalogue, validate_payload
from schemas.lifecycle import Status
from schemas.messages import (
    EventData,
    PersonErased,
    ReferralCreate,
    ReferralRequested,
    ReferralStatusChanged,
    StatusChange,
)

REQUESTED = "de.duisburg.talenthub.referral.requested.v1"
STATUS_CHANGED = "de.duisburg.talenthub.referral.status-changed.v1"
ERASED = "de.duisburg.talenthub.person.erased.v1"
BODY = "body"

M = TypeVar("M", bound=BaseModel)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_text(value: Any) -> Any:
    # Pydantic alone would also take Unix timestamps; partners must send YYYY-MM-DD.
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO date YYYY-MM-DD")
    return value


def _timestamp_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp with time zone")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]
PersonName = Annotated[str, Field(min_length=1, max_length=100)]
Note = Annotated[str, Field(min_length=1, max_length=2000)]


class NativeModel(BaseModel):
    """Base of native message models: strict, stripped, immutable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


@dataclass(frozen=True)
class StatusCode:
    """What one native status code means in the canonical lifecycle."""

    status: Status
    business_status: str | None = None
    reason: str | None = None
    outcome: str | None = None


def as_object(native: Any, field: str = BODY) -> dict[str, Any]:
    """The native message as a JSON object, or a MappingError."""
    if not isinstance(native, dict):
        raise MappingError(field, "must be a JSON object")
    return native


def message_type(native: dict[str, Any], field: str, known: Mapping[str, Any]) -> str:
    """The message-type code of a native message, checked against the known codes."""
    value = native.get(field)
    if value is None:
        raise MappingError(field, "field required")
    if not isinstance(value, str) or value not in known:
        raise MappingError(field, f"unknown message type; expected one of {sorted(known)}")
    return value


def parse(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate native data; the first problem becomes a MappingError on the native path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, prefix=prefix) from None


def build(model: type[M], data: dict[str, Any], *, names: Mapping[str, str]) -> M:
    """Build a canonical model; a problem names the native field it came from, if known."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, names=names) from None


def from_validation(
    exc: ValidationError, *, prefix: str = "", names: Mapping[str, str] | None = None
) -> MappingError:
    """A MappingError for the first error of a pydantic ValidationError."""
    first = exc.errors(include_input=False, include_url=False)[0]
    field = rename(".".join(str(part) for part in first["loc"]), names or {})
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    message = first["msg"].removeprefix("Value error, ")
    return MappingError(field or BODY, message)


def rename(path: str, names: Mapping[str, str]) -> str:
    """The native name of a canonical field path; keys ending in "." rename a whole prefix."""
    if path in names:
        return names[path]
    for old, new in names.items():
        if old.endswith(".") and path.startswith(old):
            return new + path.removeprefix(old)
    return path


def create_referral(data: dict[str, Any], *, key: str, names: Mapping[str, str]) -> CreateReferral:
    """The CreateReferral operation, its payload checked against the catalogue."""
    body = build(ReferralCreate, data, names=names)
    rtype = load_catalogue().get(body.type)
    if rtype is None:
        raise MappingError(rename("type", names), "unknown referral type")
    problems = validate_payload(rtype, body.payload)
    if problems:
        field, message = problems[0]
        raise MappingError(rename(field, names), message)
    return CreateReferral(body=body, idempotency_key=key)


def lookup(table: Mapping[str, StatusCode], code: str, field: str) -> StatusCode:
    """The canonical meaning of a native status code; unknown codes are a MappingError."""
    entry = table.get(code)
    if entry is None:
        raise MappingError(field, "unknown code")
    return entry


def change_status(
    referral_id: UUID,
    entry: StatusCode,
    *,
    key: str,
    occurred_at: Any = None,
    note: str | None = None,
    names: Mapping[str, str],
) -> ChangeStatus:
    """The ChangeStatus operation for one native status code."""
    data = {
        "status": entry.status,
        "business_status": entry.business_status,
        "reason": entry.reason,
        "outcome": entry.outcome,
        "occurred_at": occurred_at,
        "note": note,
    }
    body = build(StatusChange, data, names=names)
    return ChangeStatus(referral_id=referral_id, body=body, idempotency_key=key)


def parse_event(
    event_type: str, data: Any
) -> ReferralRequested | ReferralStatusChanged | PersonErased:
    """The routed event as its canonical model; unsupported types are a MappingError."""
    if event_type == ERASED:
        return parse(PersonErased, as_object(data, "data"), prefix="data")
    models: dict[str, type[ReferralRequested] | type[ReferralStatusChanged]] = {
        REQUESTED: ReferralRequested,
        STATUS_CHANGED: ReferralStatusChanged,
    }
    model = models.get(event_type)
    if model is None:
        raise MappingError("event_type", "not delivered in this partner's native format")
    event = parse(model, as_object(data, "data"), prefix="data")
    if event.referral_id is None:
        raise MappingError("data.referral_id", "field required")
    return event


def referral_id_of(event: EventData) -> str:
    """The referral id of a routed event (checked present by parse_event)."""
    return str(event.referral_id)


def compact(native: dict[str, Any]) -> dict[str, Any]:
    """The native payload without empty (None) fields, recursively for nested objects."""
    result: dict[str, Any] = {}
    for key, value in native.items():
        if isinstance(value, dict):
            value = compact(value)
        if value is not None and value != {}:
            result[key] = value
    return result


def iso(value: date | str | None) -> str | None:
    """A date or datetime as ISO text (text is taken as already ISO), keeping None."""
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def wrong_type(supported: set[str]) -> MappingError:
    """The error for a referral type this partner kind does not perform."""
    return MappingError(
        "data.referral_type", f"this partner kind performs only {sorted(supported)}"
    )


def erasure_notice(event: PersonErased) -> dict[str, Any]:
    """The flat German notice that the hub erased a person (Art. 19 GDPR): the pseudonym and
    the partner's own referrals with that person, for it to erase or restrict its copy."""
    return {
        "meldungsart": "LOESCHMITTEILUNG",
        "nachricht_id": str(event.event_id),
        "person_pseudonym": event.person_id,
        "vermittlung_ids": [str(i) for ids in event.notify.values() for i in ids],
        "grund": event.reason,
        "zeitpunkt": event.occurred_at.isoformat(),
    }


def status_notice(event: ReferralStatusChanged) -> dict[str, Any]:
    """The flat German status notice that university, chamber and Jobcenter receive."""
    return compact(
        {
            "meldungsart": "STATUSMELDUNG",
            "nachricht_id": str(event.event_id),
            "vermittlung_id": referral_id_of(event),
            "vermittlungsart": event.referral_type,
            "gemeldet_von": event.acting_partner,
            "vorheriger_status": event.from_status.value,
            "status": event.status.value,
            "fachstatus": event.business_status,
            "grund": event.reason,
            "ergebnis": event.outcome,
            "bemerkung": event.note,
            "zeitpunkt": event.occurred_at.isoformat(),
        }
    )
