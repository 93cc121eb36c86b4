"""Chamber connector: IHK FOSA / HWK recognition case records <-> canonical messages."""

from __future__ import annotations

from connectors.base import ConnectorKind
from connectors.chamber.config import ChamberConfig
from connectors.chamber.mapping import ChamberMapper
from connectors.config import ConnectorConfig

KIND = "chamber"


def connector(config: ConnectorConfig | None = None) -> ConnectorKind:
    """The chamber connector, with its defaults unless a config is given."""
    given = config.model_dump(exclude_unset=True) if config else {}
    mapper = ChamberMapper(ChamberConfig.model_validate(given))
    return ConnectorKind(kind=KIND, inbound=mapper, outbound=mapper)
