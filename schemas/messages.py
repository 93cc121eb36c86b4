"""v1 message models: what partners send to the API and what travels on the topics.

API request bodies are strict (unknown fields are refused). Event data tolerates unknown
fields so that a consumer keeps working when a producer adds an optional one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.lifecycle import Status

PartnerId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$", examples=["amt"])]
PersonId = Annotated[str, Field(pattern=r"^p_[A-Za-z0-9_-]{16,64}$")]
BusinessStatus = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,63}$")]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,63}$")]
#: Not blank: surrounding whitespace is stripped before the length is checked.
NOT_BLANK = r"\S"
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NOT_BLANK)]

SCHEMA_VERSION = "1"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


#: Properties of which a person needs at least one (checked by ``PersonIn._identifiable``).
IDENTIFYING = ("id", "partner_reference", "family_name")


class PersonIn(Strict):
    """The client a referral is about: a known hub pseudonym, or the requester's own data."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "anyOf": [
                {"required": [name], "not": {"properties": {name: {"type": "null"}}}}
                for name in IDENTIFYING
            ]
        },
    )

    id: PersonId | None = Field(None, description="Hub pseudonym, when the requester knows it.")
    given_name: Name | None = None
    family_name: Name | None = None
    birth_date: date | None = None
    partner_reference: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NOT_BLANK,
        description="The requester's own identifier (e.g. Matrikelnummer); stays with it.",
    )

    @model_validator(mode="after")
    def _identifiable(self) -> PersonIn:
        if not any(getattr(self, name) for name in IDENTIFYING):
            raise ValueError("person needs id, partner_reference or family_name")
        return self


class ReferralCreate(Strict):
    """Body of ``POST /v1/referrals``."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "type": "residence.student",
                    "performer": "amt",
                    "person": {
                        "given_name": "Wei",
                        "family_name": "Li",
                        "birth_date": "2001-04-03",
                        "partner_reference": "ES012345601",
                    },
                    "payload": {
                        "programme": "M.Sc. Computer Engineering",
                        "semester": "2027S",
                        "admission_date": "2027-02-15",
                    },
                }
            ]
        },
    )

    type: str = Field(max_length=64, description="A referral type from the catalogue.")
    performer: PartnerId
    person: PersonIn
    payload: dict[str, Any] = Field(default_factory=dict)
    correlation_id: UUID | None = None


class StatusChange(Strict):
    """Body of ``POST /v1/referrals/{id}/status``."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"status": "accepted"},
                {"status": "completed", "business_status": "PERMIT_GRANTED", "outcome": "granted"},
            ]
        },
    )

    status: Status
    business_status: BusinessStatus | None = None
    reason: Code | None = None
    outcome: Code | None = None
    note: str | None = Field(None, max_length=2000)
    occurred_at: AwareDatetime | None = None


class ReferralAccepted(BaseModel):
    """Answer to an accepted referral (202)."""

    id: UUID
    status: Status
    person_id: str


class StatusEntry(BaseModel):
    status: Status
    business_status: str | None
    reason: str | None
    outcome: str | None
    set_by: str
    occurred_at: datetime
    recorded_at: datetime
    event_id: UUID


class ReferralView(BaseModel):
    id: UUID
    type: str
    requester: str
    performer: str
    person_id: str
    status: Status
    business_status: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    history: list[StatusEntry]
    holds: list[RoutingHoldView] = Field(
        default_factory=list, description="Deliveries held back, with the reason."
    )
    clocks: list[ClockView] = Field(
        default_factory=list, description="Deadline clocks: running, paused, stopped, due."
    )


class ReferralSummary(BaseModel):
    id: UUID
    type: str
    requester: str
    performer: str
    person_id: str
    status: Status
    business_status: str | None
    created_at: datetime
    updated_at: datetime


class ReferralPage(BaseModel):
    items: list[ReferralSummary]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    event_id: UUID
    event_type: str
    source_partner: str
    referral_id: UUID | None
    referral_type: str | None
    status: str | None
    business_status: str | None
    purpose: str | None
    occurred_at: datetime
    recorded_at: datetime


class Timeline(BaseModel):
    person_id: str
    entries: list[TimelineEntry]


class InboxItem(BaseModel):
    event_id: UUID
    event_type: str
    referral_id: UUID | None
    received_at: datetime
    data: dict[str, Any]


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class EventData(BaseModel):
    """Fields every event carries (design §4)."""

    model_config = ConfigDict(extra="ignore")

    event_id: UUID
    referral_id: UUID | None = None
    person_id: str
    acting_partner: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    purpose: str | None = None
    legal_basis: str | None = None
    schema_version: Literal["1"] = "1"
    correlation_id: UUID
    causation_id: UUID | None = None


class PersonDetails(BaseModel):
    """Personal fields travel encrypted with the person's data key (``enc:v1:…`` tokens)."""

    given_name: str | None = None
    family_name: str | None = None
    birth_date: str | None = Field(None, description="ISO date, or its encrypted token.")


class ReferralRequested(EventData):
    """``de.duisburg.talenthub.referral.requested.v1``"""

    referral_type: str
    requester: str
    performer: str
    person: PersonDetails | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class ReferralStatusChanged(EventData):
    """``de.duisburg.talenthub.referral.status-changed.v1``"""

    referral_type: str
    requester: str
    performer: str
    from_status: Status
    status: Status
    business_status: str | None = None
    reason: str | None = None
    outcome: str | None = None
    note: str | None = None


class ReferralDelivered(EventData):
    """``de.duisburg.talenthub.referral.delivered.v1``: a routed event reached its recipient."""

    recipient: str
    referral_type: str | None = None
    delivered_event_id: UUID
    delivered_event_type: str


class ReferralDeliveryFailed(EventData):
    """``de.duisburg.talenthub.referral.delivery-failed.v1``: the recipient rejected it."""

    recipient: str
    referral_type: str | None = None
    delivered_event_id: UUID
    delivered_event_type: str
    reason: str
    status_code: int | None = None


class ConsentCreate(Strict):
    """Body of ``POST /v1/consents``: a consent the person gave, recorded by a partner."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "person": {"id": "p_Xk3v9QmT2bLr7WzA4nQe"},
                    "purpose": "counselling",
                    "partners": ["amt", "jobcenter"],
                    "granted_on": "2027-03-01",
                    "evidence_reference": "ITC-Beratung 2027/0815, Einwilligung Blatt 1",
                    "notice_language": "ar",
                }
            ]
        },
    )

    person: PersonIn
    purpose: Literal["residence", "counselling", "education", "employment", "recognition"]
    partners: list[PartnerId] = Field(min_length=1, max_length=10)
    granted_on: date
    evidence_reference: str = Field(min_length=1, max_length=200)
    notice_language: str = Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", description="BCP 47")
    shared_with_purposes: list[
        Literal["residence", "counselling", "education", "employment", "recognition"]
    ] = Field(default_factory=list, description="Staff domains that may also see this purpose.")


class ConsentView(BaseModel):
    id: UUID
    person_id: str
    purpose: str
    partners: list[str]
    granted_on: date
    evidence_reference: str
    notice_language: str
    shared_with_purposes: list[str] = Field(default_factory=list)
    recorded_by: str
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    active: bool


class RoutingHoldView(BaseModel):
    """A routed event held back (e.g. consent withdrawn); staff can release it."""

    event_id: UUID
    recipient: str
    reason: str
    held_at: datetime


class PersonErased(EventData):
    """``de.duisburg.talenthub.person.erased.v1``: the person's data key was deleted.

    ``notify`` names every partner that took part in one of the person's referrals, each with
    those referrals: the router tells each of them (Art. 19 GDPR), and a partner's copy keeps
    only its own entry.
    """

    reason: str
    notify: dict[PartnerId, list[UUID]] = Field(default_factory=dict)


class DeadlineDue(EventData):
    """``de.duisburg.talenthub.referral.deadline-due.v1``: a clock's warning time or expiry.

    A suggestion (e.g. ``BA_CONSENT_DEEMED``) is for the caseworker to confirm; the hub
    decides nothing by itself.
    """

    referral_type: str
    requester: str
    performer: str
    clock: str
    kind: Literal["warning", "expired"]
    due_at: AwareDatetime
    suggestion: str | None = None


class AuditCheckpointSigned(BaseModel):
    """``de.duisburg.talenthub.audit.checkpoint-signed.v1``: a signed tree head of the audit log.

    ``note`` is the checkpoint as a signed note (C2SP tlog-checkpoint) whose signature
    ``key`` (a verifier key) checks; anyone holding the key can check inclusion and
    consistency proofs against it.
    """

    model_config = ConfigDict(extra="ignore")

    origin: str = Field(description="The log's name, first line of the checkpoint.")
    tree_size: int = Field(ge=0, description="Leaves the checkpoint covers.")
    root_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 Merkle root, hex.")
    key: str = Field(description="The verifier key of the signature.")
    note: str = Field(description="The signed note: checkpoint body and signature lines.")


class ClockView(BaseModel):
    """One deadline clock of a referral as the API shows it."""

    name: str
    state: str
    started_at: datetime | None
    due_at: datetime | None
    due_date: date | None
    warn_at: datetime | None
    time_left_seconds: float | None
    suggestion: str | None
