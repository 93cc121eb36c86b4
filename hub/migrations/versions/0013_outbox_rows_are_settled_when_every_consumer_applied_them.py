"""outbox rows are settled when every consumer applied them; the relay remembers its broker

An outbox row used to be done once the broker acknowledged it. A broker that loses what it
acknowledged (the embedded in-memory one after a restart) then lost those events for good.
Now a row is *settled* once every consumer group that must apply it has done so, and the
relay re-publishes the unsettled rows when it meets a broker it has not met before.

Rows published before this version are counted as settled when they were published (the old
rule): their consumers ran under that rule, and nothing can tell now which of them a broker
restarted with this upgrade had not delivered.

``broker_epoch`` holds one row: the identity of the broker the relay last published to (the
id the broker gave the hub's epoch topic).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("settled_at", hub.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE outbox SET settled_at = published_at WHERE published_at IS NOT NULL")
    op.create_index(
        "ix_outbox_unsettled",
        "outbox",
        ["id"],
        unique=False,
        sqlite_where=sa.text("settled_at IS NULL"),
        postgresql_where=sa.text("settled_at IS NULL"),
    )
    op.create_table(
        "broker_epoch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.String(length=100), nullable=False),
        sa.Column("met_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broker_epoch")),
    )


def downgrade() -> None:
    op.drop_table("broker_epoch")
    op.drop_index("ix_outbox_unsettled", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("settled_at")
