"""deadline clock index and notices

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 21:57:07.153985
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('clock_instances',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('referral_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('referral_type', sa.String(length=64), nullable=False),
    sa.Column('performer_id', sa.String(length=64), nullable=False),
    sa.Column('requester_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=70), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('started_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('warn_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('suggestion', sa.String(length=64), nullable=True),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clock_instances')),
    sa.UniqueConstraint('referral_id', 'name', name=op.f('uq_clock_instances_referral_id_name'))
    )
    with op.batch_alter_table('clock_instances', schema=None) as batch_op:
        batch_op.create_index('ix_clock_instances_due', ['state', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_clock_instances_performer_id'), ['performer_id'], unique=False)

    op.create_table('deadline_notices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('referral_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('started_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('emitted_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_notices')),
    sa.UniqueConstraint('referral_id', 'name', 'kind', 'started_at', name=op.f('uq_deadline_notices_referral_id_name_kind_started_at'))
    )



def downgrade() -> None:

    op.drop_table('deadline_notices')
    with op.batch_alter_table('clock_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clock_instances_performer_id'))
        batch_op.drop_index('ix_clock_instances_due')

    op.drop_table('clock_instances')

