"""The partner kinds the hub has connectors for, by name."""

from __future__ import annotations

from collections.abc import Callable

from connectors import authority, chamber, jobcenter, university
from connectors.base import ConnectorKind
from connectors.config import ConnectorConfig

_FACTORIES: dict[str, Callable[[ConnectorConfig | None], ConnectorKind]] = {
    university.KIND: university.connector,
    chamber.KIND: chamber.connector,
    jobcenter.KIND: jobcenter.connector,
    authority.KIND: authority.connector,
}

#: Each kind with its default settings (pure objects: building them does no I/O).
KINDS: dict[str, ConnectorKind] = {kind: build(None) for kind, build in _FACTORIES.items()}


def connector_for(kind: str, config: ConnectorConfig | None = None) -> ConnectorKind:
    """The connector of a partner kind, with one partner's settings if given."""
    if kind not in _FACTORIES:
        raise KeyError(f"no connector for partner kind {kind!r}")
    return KINDS[kind] if config is None else _FACTORIES[kind](config)
