"""Shared fixtures: a migrated database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new schema in the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    assert PG_URL
    yield from _pg_schema(PG_URL)


def _pg_schema(base_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def hub_env(database_url: str, data_dir: Path, bootstrap: str | None = None) -> dict[str, Any]:
    """Settings values for a hub under test."""
    env: dict[str, Any] = {"database_url": database_url, "data_dir": data_dir}
    if bootstrap:
        env["kafka_bootstrap_servers"] = bootstrap
    return env
