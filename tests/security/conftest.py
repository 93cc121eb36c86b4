"""Fixtures of the adversarial suite: a fresh hub per test on SQLite (and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hub.bootstrap import Hub
from tests.conftest import DATABASES, PG_URL, _pg_schema
from tests.hubtest import Partners, api_client, make_hub
from tests.security.support import NO_RATE_LIMITS


@pytest.fixture
def hub_and_partners(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, Partners]]:
    hub, partners = make_hub(database_url, tmp_path, **NO_RATE_LIMITS)
    yield hub, partners
    hub.engine.dispose()


@pytest.fixture
def hub(hub_and_partners: tuple[Hub, Partners]) -> Hub:
    return hub_and_partners[0]


@pytest.fixture
def partners(hub_and_partners: tuple[Hub, Partners]) -> Partners:
    return hub_and_partners[1]


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with api_client(hub) as c:
        yield c


@pytest.fixture
def app(client: TestClient) -> Any:
    return client.app


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url``, shared by the tests of one module (for the long matrices)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hub') / 'hub.db'}"
        return
    assert PG_URL
    yield from _pg_schema(PG_URL)
