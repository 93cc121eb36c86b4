from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.hubtest import Partners, api_client, make_hub


@pytest.fixture
def hub_and_partners(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    hub, partners = make_hub(database_url, tmp_path)
    yield hub, partners
    hub.engine.dispose()


@pytest.fixture
def hub(hub_and_partners: tuple[Hub, Partners]) -> Hub:
    return hub_and_partners[0]


@pytest.fixture
def client(hub_and_partners) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with api_client(hub_and_partners[0]) as c:
        yield c


@pytest.fixture
def partners(hub_and_partners) -> Partners:  # type: ignore[no-untyped-def]
    return hub_and_partners[1]
