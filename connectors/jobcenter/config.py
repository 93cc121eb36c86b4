"""Settings of the Jobcenter connector (Jobcenter Duisburg, SGB II)."""

from __future__ import annotations

from connectors.config import ConnectorConfig
from schemas.messages import PartnerId


class JobcenterConfig(ConnectorConfig):
    """Jobcenter settings: who performs the Talent Center referrals the Jobcenter raises."""

    default_performer: PartnerId = "amt"
