"""consent may share a purpose with other staff domains

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 21:44:52.074391
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared_with_purposes', sa.JSON(), server_default='[]', nullable=False))




def downgrade() -> None:

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_column('shared_with_purposes')


