"""a partner's reference is claimed before its new person is written

``person_references.person_id`` references ``people.id`` as before, but the constraint is
checked at commit (DEFERRABLE INITIALLY DEFERRED): a referral for a new person inserts the
reference first, with the pseudonym the person is about to get, so that one insert both
claims the reference and tells whether the person is new. Nothing is carried over: PostgreSQL
alters the constraint in place; SQLite rebuilds the table with every row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

CONSTRAINT = "fk_person_references_person_id_people"


def upgrade() -> None:
    _person_key(deferred=True)


def downgrade() -> None:
    _person_key(deferred=False)


def _person_key(*, deferred: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        timing = "DEFERRABLE INITIALLY DEFERRED" if deferred else "NOT DEFERRABLE"
        op.execute(f"ALTER TABLE person_references ALTER CONSTRAINT {CONSTRAINT} {timing}")
        return
    with op.batch_alter_table("person_references", recreate="always") as batch_op:
        batch_op.drop_constraint(CONSTRAINT, type_="foreignkey")
        batch_op.create_foreign_key(
            CONSTRAINT,
            "people",
            ["person_id"],
            ["id"],
            deferrable=True if deferred else None,
            initially="DEFERRED" if deferred else None,
        )
