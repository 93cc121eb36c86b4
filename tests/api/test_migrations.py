"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.models import metadata


def test_migrations_match_models(hub_and_partners) -> None:  # type: ignore[no-untyped-def]
    engine = hub_and_partners[0].engine
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
