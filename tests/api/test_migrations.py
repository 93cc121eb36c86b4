"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from hub.db import make_engine
from hub.migrate import alembic_config, revision, upgrade
from hub.models import metadata


def test_migrations_match_models(hub_and_partners) -> None:  # type: ignore[no-untyped-def]
    engine = hub_and_partners[0].engine
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_the_marks_index_built_beforehand_is_found_in_place(database_url: str) -> None:
    """docs/operations.md: on a large table the index of migration 0017 is built concurrently
    by hand first; the migration then goes through and leaves one index."""
    engine = make_engine(database_url)
    try:
        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0016")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            concurrently = "CONCURRENTLY " if engine.dialect.name == "postgresql" else ""
            connection.exec_driver_sql(
                f"CREATE INDEX {concurrently}IF NOT EXISTS ix_processed_events_event_id "
                "ON processed_events (event_id)"
            )
        upgrade(engine)
        indexes = inspect(engine).get_indexes("processed_events")
        assert [i["column_names"] for i in indexes] == [["event_id"]]
        assert revision(engine) == ScriptDirectory.from_config(config).get_current_head()
    finally:
        engine.dispose()
