"""personal fields of people are stored encrypted

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 21:22:11.567164
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.alter_column('given_name',
               existing_type=sa.VARCHAR(length=100),
               type_=sa.Text(),
               existing_nullable=True)
        batch_op.alter_column('family_name',
               existing_type=sa.VARCHAR(length=100),
               type_=sa.Text(),
               existing_nullable=True)
        batch_op.alter_column('birth_date',
               existing_type=sa.DATE(),
               type_=sa.Text(),
               existing_nullable=True)




def downgrade() -> None:

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.alter_column('birth_date',
               existing_type=sa.Text(),
               type_=sa.DATE(),
               existing_nullable=True)
        batch_op.alter_column('family_name',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=100),
               existing_nullable=True)
        batch_op.alter_column('given_name',
               existing_type=sa.Text(),
               type_=sa.VARCHAR(length=100),
               existing_nullable=True)


