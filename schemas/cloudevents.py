"""CloudEvents 1.0 attributes as carried in Kafka binary mode (``ce_`` headers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "de.duisburg.talenthub."

# Extension attribute names must be lower-case alphanumerics (CloudEvents 1.0 §3.1.1).
ExtensionName = Annotated[str, Field(pattern=r"^[a-z0-9]{1,20}$")]


class EventType:
    """The event types of v1 (reverse DNS, past tense, versioned)."""

    REFERRAL_REQUESTED = TYPE_PREFIX + "referral.requested.v1"
    REFERRAL_STATUS_CHANGED = TYPE_PREFIX + "referral.status-changed.v1"
    REFERRAL_DELIVERED = TYPE_PREFIX + "referral.delivered.v1"
    REFERRAL_DELIVERY_FAILED = TYPE_PREFIX + "referral.delivery-failed.v1"
    REFERRAL_DEADLINE_DUE = TYPE_PREFIX + "referral.deadline-due.v1"
    PERSON_LINKED = TYPE_PREFIX + "person.linked.v1"
    CONSENT_GRANTED = TYPE_PREFIX + "consent.granted.v1"
    CONSENT_WITHDRAWN = TYPE_PREFIX + "consent.withdrawn.v1"
    PERSON_ERASED = TYPE_PREFIX + "person.erased.v1"
    AUDIT_CHECKPOINT_SIGNED = TYPE_PREFIX + "audit.checkpoint-signed.v1"


class CloudEventAttributes(BaseModel):
    """Context attributes of one event; the JSON ``data`` travels as the Kafka value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = SPECVERSION
    id: str = Field(description="Event id (UUID); the dedup key everywhere.")
    source: str = Field(description="URI reference of the acting partner, e.g. /partners/ude.")
    type: str
    subject: str | None = Field(None, description="The referral id, where there is one.")
    time: datetime = Field(description="When it occurred.")
    datacontenttype: str = CONTENT_TYPE
    dataschema: str | None = None
    partitionkey: str | None = Field(None, description="The person pseudonym.")
    traceparent: str | None = None
    extensions: dict[ExtensionName, str] = Field(default_factory=dict)
