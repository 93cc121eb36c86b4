"""Settings of the university connector (UDE student registry / International Office)."""

from __future__ import annotations

from connectors.config import ConnectorConfig
from schemas.messages import PartnerId


class UniversityConfig(ConnectorConfig):
    """University settings: who performs the residence referrals the registry raises."""

    default_performer: PartnerId = "amt"
