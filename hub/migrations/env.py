"""Alembic environment: migrations run against the URL the hub gives them."""

from __future__ import annotations

from alembic import context

from hub.models import metadata

config = context.config


def run() -> None:
    """Run migrations online, on the connection the caller passed in."""
    connection = config.attributes.get("connection")
    if connection is None:
        from hub.db import make_engine

        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as conn:
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
