"""Settings of the authority connector (Amt für Integration und Einwanderungsservice)."""

from __future__ import annotations

from pydantic import Field

from connectors.config import ConnectorConfig


class AuthorityConfig(ConnectorConfig):
    """Authority settings: the addresses in the XAusländer-style message header."""

    # Duisburg's official municipality key (AGS 05112000) plus the office; set per deployment.
    behoerdenkennung: str = Field("05112000-ABH", min_length=1, max_length=64)
    hub_kennung: str = Field("talenthub-duisburg", min_length=1, max_length=64)
