"""push delivery: connector config, delivery state, replays

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:36:44.691295
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('delivery_state',
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('paused_since', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('last_success_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('dead_lettered', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_delivery_state_partner_id_partners')),
    sa.PrimaryKeyConstraint('partner_id', name=op.f('pk_delivery_state'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replay', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_outbox_topic_event_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_outbox_topic_event_id_replay'), ['topic', 'event_id', 'replay'])

    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('connector', sa.JSON(), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.drop_column('connector')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_outbox_topic_event_id_replay'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_outbox_topic_event_id'), ['topic', 'event_id'])
        batch_op.drop_column('replay')

    op.drop_table('delivery_state')

