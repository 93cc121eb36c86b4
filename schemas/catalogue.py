"""The referral-type catalogue: which partner kinds may request and perform which types,
with their payload fields and business status codes. Loaded from YAML shipped in the package.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal
from uuid import UUID

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from schemas.clocks import ClockDefinition, parse_clocks, validate_clocks

Purpose = Literal["residence", "counselling", "education", "employment", "recognition"]
FieldType = Literal["string", "date", "boolean", "uuid", "semester", "country", "language"]

_SEMESTER = re.compile(r"^\d{4}[SW]$")  # e.g. 2027S (summer), 2027W (winter)
_COUNTRY = re.compile(r"^[A-Z]{2}$")  # ISO 3166-1 alpha-2
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")  # BCP 47 primary tag, optional region


class PayloadField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = False
    max_length: int | None = Field(None, gt=0)


class ReferralType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    purpose: Purpose
    legal_basis: str
    requester: list[str]
    performer: list[str]
    payload: dict[str, PayloadField] = Field(default_factory=dict)
    business_statuses: list[str]
    clocks: list[ClockDefinition] = []

    @field_validator("clocks", mode="before")
    @classmethod
    def _name_clock_errors(cls, value: Any, info: ValidationInfo) -> Any:
        # Parsed here so that a bad entry's error names the type and the clock, not a list index.
        if isinstance(value, list):
            return parse_clocks(str(info.data.get("id", "?")), value)
        return value


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    partner_kinds: list[str]
    types: dict[str, ReferralType]

    @model_validator(mode="before")
    @classmethod
    def _name_types(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("types"), dict):
            data = {**data, "types": {k: {**v, "id": k} for k, v in data["types"].items()}}
        return data

    @model_validator(mode="after")
    def _kinds_known(self) -> Catalogue:
        for t in self.types.values():
            unknown = set(t.requester + t.performer) - set(self.partner_kinds)
            if unknown:
                raise ValueError(f"type {t.id}: unknown partner kind(s) {sorted(unknown)}")
        validate_clocks(self, {t.id: t.clocks for t in self.types.values()})
        return self

    def get(self, type_id: str) -> ReferralType | None:
        """The referral type with that id, if the catalogue has it."""
        return self.types.get(type_id)


@cache
def load_catalogue() -> Catalogue:
    """The catalogue shipped with this package."""
    text = resources.files("schemas").joinpath("catalogue/referral-types.yaml").read_text("utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))


def validate_payload(rtype: ReferralType, payload: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with a referral payload as (field, message) pairs; empty when valid."""
    problems = [
        (f"payload.{name}", "field not allowed for this referral type")
        for name in payload
        if name not in rtype.payload
    ]
    for name, spec in rtype.payload.items():
        if name not in payload or payload[name] is None:
            if spec.required:
                problems.append((f"payload.{name}", "field required"))
            continue
        message = _check_value(spec, payload[name])
        if message:
            problems.append((f"payload.{name}", message))
    return problems


def _check_value(spec: PayloadField, value: Any) -> str | None:
    if spec.type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if not isinstance(value, str):
        return "must be a string"
    if spec.max_length and len(value) > spec.max_length:
        return f"longer than {spec.max_length} characters"
    checks = {
        "date": _is_date,
        "uuid": _is_uuid,
        "semester": lambda v: bool(_SEMESTER.match(v)),
        "country": lambda v: bool(_COUNTRY.match(v)),
        "language": lambda v: bool(_LANGUAGE.match(v)),
    }
    check = checks.get(spec.type)
    if check and not check(value):
        return f"not a valid {spec.type} ({_EXAMPLES[spec.type]})"
    return None


_EXAMPLES = {
    "date": "YYYY-MM-DD",
    "uuid": "RFC 9562 UUID",
    "semester": "year and S or W, e.g. 2027S",
    "country": "ISO 3166-1 alpha-2, e.g. IN",
    "language": "BCP 47, e.g. de or ar",
}


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
