"""Settings of the chamber connector (IHK FOSA, HWK recognition case records)."""

from __future__ import annotations

import re

from pydantic import field_validator

from connectors.config import ConnectorConfig
from schemas.messages import PartnerId


class ChamberConfig(ConnectorConfig):
    """Chamber settings: which chamber this is and how its file numbers look."""

    chamber_id: PartnerId = "ihk-fosa"
    default_performer: PartnerId = "amt"
    # IHK FOSA and the HWKs number their files differently; configurable per chamber.
    aktenzeichen_pattern: str = r"^[A-Z0-9][A-Z0-9./-]{3,39}$"

    @field_validator("aktenzeichen_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value
