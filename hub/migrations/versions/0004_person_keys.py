"""person keys: per-person data keys for crypto-shredding

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('person_keys',
    sa.Column('person_id', sa.String(length=70), nullable=False),
    sa.Column('wrapped_key', sa.LargeBinary(), nullable=True),
    sa.Column('master_key_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('erased_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('person_id', name=op.f('pk_person_keys'))
    )


def downgrade() -> None:

    op.drop_table('person_keys')
