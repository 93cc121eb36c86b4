"""Authority connector: XAusländer-style messages of the Amt <-> canonical messages."""

from __future__ import annotations

from connectors.authority.config import AuthorityConfig
from connectors.authority.mapping import AuthorityMapper
from connectors.base import ConnectorKind
from connectors.config import ConnectorConfig

KIND = "authority"


def connector(config: ConnectorConfig | None = None) -> ConnectorKind:
    """The authority connector, with its defaults unless a config is given."""
    given = config.model_dump(exclude_unset=True) if config else {}
    mapper = AuthorityMapper(AuthorityConfig.model_validate(given))
    return ConnectorKind(kind=KIND, inbound=mapper, outbound=mapper)
