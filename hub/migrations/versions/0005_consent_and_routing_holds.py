"""consent and routing holds

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 21:08:46.108414
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('routing_holds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=120), nullable=False),
    sa.Column('recipient', sa.String(length=64), nullable=False),
    sa.Column('referral_id', sa.String(length=36), nullable=True),
    sa.Column('person_id', sa.String(length=70), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('held_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_holds')),
    sa.UniqueConstraint('event_id', 'recipient', name=op.f('uq_routing_holds_event_id_recipient'))
    )
    with op.batch_alter_table('routing_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_holds_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_routing_holds_referral_id'), ['referral_id'], unique=False)

    op.create_table('consents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('person_id', sa.String(length=70), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('partners', sa.JSON(), nullable=False),
    sa.Column('granted_on', sa.Date(), nullable=False),
    sa.Column('evidence_reference', sa.String(length=200), nullable=False),
    sa.Column('notice_language', sa.String(length=16), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_consents_person_id_people')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index('ix_consents_person_purpose', ['person_id', 'purpose'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index('ix_consents_person_purpose')

    op.drop_table('consents')
    with op.batch_alter_table('routing_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_holds_referral_id'))
        batch_op.drop_index(batch_op.f('ix_routing_holds_person_id'))

    op.drop_table('routing_holds')

