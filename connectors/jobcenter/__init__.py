"""Jobcenter connector: customer-number-based referral records <-> canonical messages."""

from __future__ import annotations

from connectors.base import ConnectorKind
from connectors.config import ConnectorConfig
from connectors.jobcenter.config import JobcenterConfig
from connectors.jobcenter.mapping import JobcenterMapper

KIND = "jobcenter"


def connector(config: ConnectorConfig | None = None) -> ConnectorKind:
    """The Jobcenter connector, with its defaults unless a config is given."""
    given = config.model_dump(exclude_unset=True) if config else {}
    mapper = JobcenterMapper(JobcenterConfig.model_validate(given))
    return ConnectorKind(kind=KIND, inbound=mapper, outbound=mapper)
