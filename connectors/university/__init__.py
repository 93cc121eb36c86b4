"""University connector: UDE student-registry records <-> canonical referral messages."""

from __future__ import annotations

from connectors.base import ConnectorKind
from connectors.config import ConnectorConfig
from connectors.university.config import UniversityConfig
from connectors.university.mapping import UniversityMapper

KIND = "university"


def connector(config: ConnectorConfig | None = None) -> ConnectorKind:
    """The university connector, with its defaults unless a config is given."""
    given = config.model_dump(exclude_unset=True) if config else {}
    mapper = UniversityMapper(UniversityConfig.model_validate(given))
    return ConnectorKind(kind=KIND, inbound=mapper, outbound=mapper)
