"""the consumers' marks are found by event id

``processed_events`` is keyed by (consumer, event id). The relay asks every second which
consumers applied the events of its unsettled outbox rows, by event id over the marks of every
consumer; the marks are kept for months (``HUB_HOUSEKEEPING_KEEP_DAYS``), so without an index
led by the event id PostgreSQL scans them all each time. Nothing is carried over.

Building the index makes the consumers' inserts of marks wait for as long as the build
takes. On a large table, build it beforehand without blocking them, and this migration then
finds it in place:
``CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_processed_events_event_id ON processed_events (event_id)``.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEX = "ix_processed_events_event_id"


def upgrade() -> None:
    op.create_index(INDEX, "processed_events", ["event_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="processed_events")
