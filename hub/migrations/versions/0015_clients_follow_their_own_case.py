"""clients follow their own case: access codes, client sessions, citizen-login links

``client_invites`` holds one-time access codes (as SHA-256 hashes) a caseworker hands a
client; ``client_sessions`` the clients' browser sessions (token hashes); ``citizen_links``
a citizen login's keyed subject hash, the person it opens and the code it was
linked with. The audit log's actor types
gain ``client``: a client viewing their own case is audited as themselves. Nothing existing
is carried over; the constraint is replaced in place (SQLite rebuilds the table, keeping
every row and its leaf hash, which does not depend on the constraint).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

OLD_ACTORS = "actor_type IN ('partner', 'staff', 'system')"
NEW_ACTORS = "actor_type IN ('partner', 'staff', 'system', 'client')"


def upgrade() -> None:
    op.create_table(
        "client_invites",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=70), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_client_invites_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_invites")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_client_invites_code_hash")),
    )
    op.create_index(op.f("ix_client_invites_person_id"), "client_invites", ["person_id"])
    op.create_table(
        "client_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=70), nullable=False),
        sa.Column("invite_id", sa.String(length=32), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["invite_id"],
            ["client_invites.id"],
            name=op.f("fk_client_sessions_invite_id_client_invites"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_client_sessions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_client_sessions")),
    )
    op.create_index(op.f("ix_client_sessions_invite_id"), "client_sessions", ["invite_id"])
    op.create_index(op.f("ix_client_sessions_person_id"), "client_sessions", ["person_id"])
    op.create_table(
        "citizen_links",
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=70), nullable=False),
        sa.Column("invite_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_citizen_links_person_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["invite_id"],
            ["client_invites.id"],
            name=op.f("fk_citizen_links_invite_id_client_invites"),
        ),
        sa.PrimaryKeyConstraint("subject_hash", name=op.f("pk_citizen_links")),
    )
    op.create_index(op.f("ix_citizen_links_person_id"), "citizen_links", ["person_id"])
    op.create_index(op.f("ix_citizen_links_invite_id"), "citizen_links", ["invite_id"])
    _actor_types(NEW_ACTORS)


def downgrade() -> None:
    _actor_types(OLD_ACTORS)
    op.drop_index(op.f("ix_citizen_links_invite_id"), table_name="citizen_links")
    op.drop_index(op.f("ix_citizen_links_person_id"), table_name="citizen_links")
    op.drop_table("citizen_links")
    op.drop_index(op.f("ix_client_sessions_person_id"), table_name="client_sessions")
    op.drop_index(op.f("ix_client_sessions_invite_id"), table_name="client_sessions")
    op.drop_table("client_sessions")
    op.drop_index(op.f("ix_client_invites_person_id"), table_name="client_invites")
    op.drop_table("client_invites")


def _actor_types(condition: str) -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_audit_log_actor_type"), type_="check")
        batch_op.create_check_constraint("actor_type", condition)
