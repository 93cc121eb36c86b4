"""What a connector is: small protocols that each partner-kind package implements.

Connectors translate between a partner system's native format and the canonical v1
messages of ``schemas/``, and deliver routed events to the partner. They import
``schemas/`` only, never ``hub/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

from schemas.messages import ReferralCreate, StatusChange


class MappingError(ValueError):
    """A native message that does not map; names the offending field (422 at the API)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CreateReferral:
    """Canonical operation: request a referral (as ``POST /v1/referrals``)."""

    body: ReferralCreate
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ChangeStatus:
    """Canonical operation: report a status (as ``POST /v1/referrals/{id}/status``)."""

    referral_id: UUID
    body: StatusChange
    idempotency_key: str | None = None


Operation = CreateReferral | ChangeStatus


class InboundMapper(Protocol):
    """Native message from a partner -> canonical operations."""

    def to_operations(self, native: dict[str, Any]) -> list[Operation]:
        """The operations a native message stands for; raises MappingError."""
        ...


class OutboundMapper(Protocol):
    """Canonical routed event -> the partner's native payload."""

    def to_native(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """The native JSON body for one routed event; raises MappingError."""
        ...


@dataclass(frozen=True)
class OutboundMessage:
    """One routed event, ready to deliver to one partner."""

    event_id: str
    event_type: str
    referral_id: str | None
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery attempt.

    ``transient``: the partner is down, slow or overloaded; retry later, pause the partner.
    ``permanent``: the partner rejected this message (4xx other than 408/429); dead-letter it.
    """

    outcome: Literal["delivered", "transient", "permanent"]
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Deliverer(Protocol):
    """Sends outbound messages to one partner's endpoint."""

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Try to deliver once; never raises for partner-side failures."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class ConnectorKind:
    """The parts of one partner kind's connector."""

    kind: str
    inbound: InboundMapper
    outbound: OutboundMapper
