"""audit log becomes a verifiable log: Merkle leaves, signed checkpoints, no head row

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 21:00:00.000000

How the hash-chained records are carried over:

* Every existing record stays a row with its ``seq`` and its content, and becomes a leaf
  still waiting for its index. The sequencer's first batch numbers them in ``seq`` order, so
  record 1 becomes leaf 0 and the first signed checkpoint covers the whole old trail.
* The chain itself is checked once, here, before its columns go. The result is carried over
  as one more record, ``audit.chain_carried_over``, after the old ones: how many records,
  the old head's hash, and whether the chain was intact (else the first problem found).
  That record is a leaf too, so the first signed checkpoint also commits to what the old
  chain proved at the moment it was retired.
* ``audit_head``, the row every append had to lock, is dropped; ``seq`` now comes from the
  database (a sequence), continuing after the last carried-over record.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import hub.db

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
CHAINED = ("seq", "at", "actor_type", "actor", "action", "person_id", "purpose", "details",
           "prev_hash")
UNSEQUENCED = sa.text("leaf_index IS NULL")


def _old_log() -> sa.Table:
    return sa.Table(
        'audit_log', sa.MetaData(),
        sa.Column('seq', sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column('at', hub.db.UTCDateTime(timezone=True)),
        sa.Column('actor_type', sa.String(16)),
        sa.Column('actor', sa.String(128)),
        sa.Column('action', sa.String(64)),
        sa.Column('person_id', sa.String(70)),
        sa.Column('purpose', sa.String(32)),
        sa.Column('details', sa.JSON()),
        sa.Column('prev_hash', sa.String(64)),
        sa.Column('hash', sa.String(64)),
    )


def _chain_hash(values: Any) -> str:
    content = {name: values[name] for name in CHAINED}
    content["at"] = values["at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_chain(bind: sa.Connection, log: sa.Table) -> dict[str, Any]:
    """What the old chain proves: its length, its head, the first problem if any."""
    head = bind.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
    expected_seq, prev, problem, count = 1, GENESIS, None, 0
    for row in bind.execute(sa.select(log).order_by(log.c.seq)).mappings():
        count += 1
        if problem is None:
            if row["seq"] != expected_seq:
                problem = f"row {expected_seq} missing"
            elif row["prev_hash"] != prev or _chain_hash(row) != row["hash"]:
                problem = f"row {row['seq']} altered"
        expected_seq, prev = row["seq"] + 1, row["hash"]
    if problem is None and head is not None and (head.seq, head.hash) != (count, prev):
        problem = f"head says seq {head.seq}, the trail ends at {count}"
    return {
        "records": count,
        "head_hash": head.hash if head is not None else None,
        "intact": problem is None,
        **({"first_problem": problem} if problem else {}),
    }


def upgrade() -> None:
    bind = op.get_bind()
    log = _old_log()
    finding = _check_chain(bind, log)
    op.drop_table('audit_head')
    sqlite = bind.dialect.name == 'sqlite'
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('hash')
        batch_op.add_column(sa.Column('leaf_index', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('leaf_hash', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_audit_log_leaf_index'), ['leaf_index'])
        if sqlite:
            # Only an INTEGER PRIMARY KEY is SQLite's auto-incrementing row id.
            batch_op.alter_column('seq', existing_type=sa.BigInteger(), type_=sa.Integer(),
                                  autoincrement=True)
    op.create_index('ix_audit_log_unsequenced', 'audit_log', ['seq'], unique=False,
                    postgresql_where=UNSEQUENCED, sqlite_where=UNSEQUENCED)
    if not sqlite:
        op.execute("CREATE SEQUENCE audit_log_seq_seq OWNED BY audit_log.seq")
        op.execute("ALTER TABLE audit_log ALTER COLUMN seq SET DEFAULT nextval('audit_log_seq_seq')")
        op.execute("SELECT setval('audit_log_seq_seq', COALESCE(MAX(seq), 0) + 1, false) "
                   "FROM audit_log")
    if finding["records"]:
        bind.execute(sa.insert(sa.table(
            'audit_log', sa.column('at', hub.db.UTCDateTime(timezone=True)),
            sa.column('actor_type'), sa.column('actor'), sa.column('action'),
            sa.column('details', sa.JSON()),
        )).values(at=datetime.now(UTC), actor_type='system', actor='hub',
                  action='audit.chain_carried_over', details=finding))
    op.create_table('audit_checkpoints',
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.String(length=64), nullable=False),
    sa.Column('at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('key_id', sa.String(length=160), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('frontier', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('tree_size', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_keys',
    sa.Column('id', sa.String(length=160), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('wrapped_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('master_key_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('length(public_key) = 32', name=op.f('ck_audit_keys_ed25519_public_key')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_keys'))
    )


def downgrade() -> None:
    raise NotImplementedError(
        "the verifiable log cannot become a hash chain again without breaking its signed "
        "checkpoints; restore the backup taken before the upgrade instead"
    )
