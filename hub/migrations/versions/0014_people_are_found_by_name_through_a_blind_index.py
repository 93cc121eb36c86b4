"""people are found by name and birth date through a blind index; references without case

``person_index`` holds, per person, HMAC-SHA256 digests of their folded name tokens, the
tokens' Kölner Phonetik keys and their birth date (hub.people.index), never the clear text;
``blind_index_keys`` holds the HMAC key, wrapped by a master key like the data keys.
``person_references.reference_key`` is the reference in upper case, for staff search.

Backfill: every person who still has a data key is read in batches of 500; their name and
birth date are decrypted with their data key (unwrapped with the master keys) and indexed,
exactly as a new person is. Erased people have nothing left to index. The master keys are
those the running hub is configured with (``HUB_MASTER_KEYS`` / ``HUB_MASTER_KEY_ID``, or
the development key file in ``HUB_DATA_DIR``); they are read only if there are people, so a
new database needs none. The blind index key is created on first use by this backfill.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

import hub.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    op.create_table(
        "blind_index_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blind_index_keys")),
    )
    op.create_table(
        "person_index",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=70), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_person_index_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_index")),
    )
    op.create_index(
        "ix_person_index_kind_digest", "person_index", ["kind", "digest", "person_id"]
    )
    op.create_index(op.f("ix_person_index_person_id"), "person_index", ["person_id"])
    with op.batch_alter_table("person_references", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_key", sa.String(length=64), nullable=True))
    _backfill_reference_keys()
    with op.batch_alter_table("person_references", schema=None) as batch_op:
        batch_op.alter_column("reference_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_person_references_reference_key"), ["reference_key"], unique=False
        )
    _backfill_index()


def _backfill_reference_keys() -> None:
    from hub.people.names import reference_key

    bind = op.get_bind()
    refs = bind.execute(sa.text("SELECT id, reference FROM person_references")).all()
    for ref_id, reference in refs:
        bind.execute(
            sa.text("UPDATE person_references SET reference_key = :k WHERE id = :id"),
            {"k": reference_key(reference), "id": ref_id},
        )


def _backfill_index() -> None:
    from hub.crypto.fields import MASTER_KEYS
    from hub.people.index import index_person

    bind = op.get_bind()
    select_batch = sa.text(
        "SELECT p.id, p.given_name, p.family_name, p.birth_date FROM people p"
        " JOIN person_keys k ON k.person_id = p.id"
        " WHERE k.erased_at IS NULL AND p.id > :after ORDER BY p.id LIMIT :n"
    )
    after = ""
    session: Session | None = None
    while rows := bind.execute(select_batch, {"after": after, "n": BATCH}).all():
        if session is None:
            session = Session(bind=bind, info={MASTER_KEYS: _master_keys()})
        for person_id, given, family, born in rows:
            index_person(
                session,
                person_id=person_id,
                given_name=_clear(session, person_id, given),
                family_name=_clear(session, person_id, family),
                birth_date=_clear(session, person_id, born),
            )
        session.flush()
        after = rows[-1][0]
    if session is not None:
        session.close()


def _clear(session: Session, person_id: str, value: str | None) -> str | None:
    from hub.crypto.cipher import ERASED
    from hub.crypto.fields import open_value

    opened = open_value(session, person_id, value)
    return None if opened == ERASED else opened


def _master_keys() -> tuple[dict[str, bytes], str]:
    from hub.crypto.keystore import master_keys_from
    from hub.settings import Settings

    config = op.get_context().config
    given = config.attributes.get("master_keys") if config is not None else None
    return given if given is not None else master_keys_from(Settings())


def downgrade() -> None:
    with op.batch_alter_table("person_references", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_references_reference_key"))
        batch_op.drop_column("reference_key")
    op.drop_index(op.f("ix_person_index_person_id"), table_name="person_index")
    op.drop_index("ix_person_index_kind_digest", table_name="person_index")
    op.drop_table("person_index")
    op.drop_table("blind_index_keys")
