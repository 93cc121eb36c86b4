"""The sequencer: gives committed leaves their place in the Merkle tree and signs checkpoints.

Appends never wait for each other (hub.audit.service.record is one INSERT). Every few seconds
one sequencer takes the leaves that have no index yet, in append order, numbers them after
the last checkpoint, extends the tree from the checkpoint's stored frontier, and stores a new
signed checkpoint, all in one transaction. A sequencer killed mid-batch therefore leaves
nothing behind: its leaves are picked up again by the next batch.

One leader. On PostgreSQL a transaction-scoped advisory lock admits one batch at a time
across every process; on SQLite ``BEGIN IMMEDIATE`` does the same. Should two ever run a
batch at once anyway, the fence is in the data: a leaf is numbered only ``WHERE leaf_index IS
NULL``, leaf indices and checkpoint sizes are unique, and the checkpoint is signed only after
its row and its leaves were written, so the loser's transaction fails before it signs.

A checkpoint also leaves the database: to the outbox for the Kafka topic of checkpoints, and,
when configured, to an append-only file kept apart from the database (the data protection
officer's copy). A database rolled back to an earlier state then contradicts them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.audit.keys import current_signer
from hub.audit.merkle import Frontier, leaf_hash
from hub.audit.models import AuditCheckpoint, AuditRecord
from hub.audit.note import Checkpoint
from hub.audit.service import leaf_bytes
from hub.db import unit_of_work, utcnow
from hub.outbox.service import add_event
from schemas.cloudevents import CloudEventAttributes, EventType
from schemas.events import dataschema
from schemas.messages import AuditCheckpointSigned

log = logging.getLogger(__name__)

#: Any fixed 32-bit number, the same in every process; the schema is the lock's second half,
#: so hubs that share a database in schemas of their own keep logs of their own.
LEADER_LOCK = 0x7461_6C65  # "tale"


class LostRace(RuntimeError):
    """Another sequencer numbered these leaves first; this batch is rolled back, unsigned."""


@dataclass(frozen=True)
class Batch:
    """What one sequencing step did."""

    leaves: int
    tree_size: int
    note: str | None = None
    key: str | None = None


def sequence_once(
    session: Session,
    *,
    origin: str,
    batch_size: int,
    topic: str | None = None,
    signed: Callable[[int], None] | None = None,
) -> Batch:
    """Number up to ``batch_size`` waiting leaves and sign a checkpoint over them, in the
    caller's transaction; ``signed(tree_size)`` is told just after signing (tests count it)."""
    if not _lead(session):
        return Batch(0, -1)
    latest = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).first()
    frontier = Frontier.from_hex(latest.tree_size, latest.frontier) if latest else Frontier()
    waiting = session.execute(
        select(AuditRecord.__table__)
        .where(AuditRecord.leaf_index.is_(None))
        .order_by(AuditRecord.seq)
        .limit(batch_size)
    ).all()
    if not waiting:
        return Batch(0, frontier.size)
    first = frontier.size
    numbered = []
    for row in waiting:
        index = frontier.size
        hashed = leaf_hash(leaf_bytes({**row._mapping, "leaf_index": index}))
        frontier.append(hashed)
        numbered.append({"b_seq": row.seq, "b_index": index, "b_hash": hashed.hex()})
    _number(session, numbered)
    checkpoint = Checkpoint(origin=origin, size=frontier.size, root=frontier.root(), time=utcnow())
    stored = AuditCheckpoint(
        tree_size=checkpoint.size,
        root_hash=checkpoint.root.hex(),
        at=checkpoint.time,
        key_id="",
        note="",
        frontier=frontier.to_hex(),
    )
    session.add(stored)
    try:
        session.flush()  # the size is taken here, or refused: nothing is signed yet
    except IntegrityError as exc:
        raise LostRace(f"a checkpoint of size {checkpoint.size} exists") from exc
    if latest is not None:
        # Only the newest checkpoint's frontier is ever read again; a frontier is up to 64
        # hashes, which at one checkpoint every few seconds would outgrow everything else.
        latest.frontier = []
    verifier, private = current_signer(session, name=origin)
    stored.note = checkpoint.sign(origin, private)
    stored.key_id = verifier.text()
    if signed is not None:
        signed(checkpoint.size)
    if topic:
        _publish(session, topic, checkpoint, stored.note, verifier.text())
    log.debug("audit.sequenced", extra={"first": first, "tree_size": checkpoint.size})
    return Batch(len(waiting), checkpoint.size, stored.note, stored.key_id)


def _lead(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: BEGIN IMMEDIATE already made this the only writer
    locked = session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:k, hashtext(current_schema()))"),
        {"k": LEADER_LOCK},
    )
    return bool(locked)


def _number(session: Session, numbered: list[dict[str, object]]) -> None:
    # Only leaves still without an index are numbered: a row another sequencer numbered
    # first is not matched (fewer rows), an index it gave is refused (unique).
    connection = session.connection()
    try:
        if connection.dialect.name == "postgresql":
            # One statement for the batch: executemany would run one UPDATE per leaf.
            result = connection.execute(
                _NUMBER_BATCH,
                {
                    "seqs": [row["b_seq"] for row in numbered],
                    "indices": [row["b_index"] for row in numbered],
                    "hashes": [row["b_hash"] for row in numbered],
                },
            )
        else:
            result = connection.execute(_NUMBER_ONE, numbered)
    except IntegrityError as exc:  # an index already given to another leaf
        raise LostRace("leaf indices taken by another sequencer") from exc
    if result.rowcount != len(numbered):
        raise LostRace("leaves numbered by another sequencer")


_AUDIT_LOG = cast(Table, AuditRecord.__table__)
_NUMBER_ONE = (
    update(_AUDIT_LOG)
    .where(_AUDIT_LOG.c.seq == bindparam("b_seq"), _AUDIT_LOG.c.leaf_index.is_(None))
    .values(leaf_index=bindparam("b_index"), leaf_hash=bindparam("b_hash"))
)
_NUMBER_BATCH = text(
    "UPDATE audit_log SET leaf_index = n.leaf_index, leaf_hash = n.leaf_hash"
    " FROM unnest(CAST(:seqs AS bigint[]), CAST(:indices AS bigint[]),"
    " CAST(:hashes AS varchar[])) AS n(seq, leaf_index, leaf_hash)"
    " WHERE audit_log.seq = n.seq AND audit_log.leaf_index IS NULL"
)


def _publish(session: Session, topic: str, checkpoint: Checkpoint, note: str, key: str) -> None:
    attrs = CloudEventAttributes(
        id=str(uuid.uuid4()),
        source="/audit",
        type=EventType.AUDIT_CHECKPOINT_SIGNED,
        subject=str(checkpoint.size),
        time=checkpoint.time,
        dataschema=dataschema(EventType.AUDIT_CHECKPOINT_SIGNED),
        partitionkey=checkpoint.origin,
    )
    data = AuditCheckpointSigned(
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        root_hash=checkpoint.root.hex(),
        key=key,
        note=note,
    )
    add_event(session, topic=topic, attrs=attrs, data=data)


class CheckpointFile:
    """An append-only JSON-lines copy of keys and checkpoints, kept apart from the database.

    Lines are ``{"key": "<verifier key>"}`` (before the first checkpoint it signs) and
    ``{"checkpoint": "<signed note>"}``. Each write is flushed to disk before the next batch;
    a checkpoint missed in a crash is harmless, a later one covers its leaves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: set[str] | None = None

    def append(self, note: str, key: str) -> None:
        """Add one checkpoint, preceded by its key if the file does not hold that key yet."""
        if self._keys is None:
            self._keys = {line["key"] for line in read_lines(self.path) if "key" in line}
        lines = []
        if key not in self._keys:
            lines.append(json.dumps({"key": key}))
            self._keys.add(key)
        lines.append(json.dumps({"checkpoint": note}))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a") as out:
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())


def read_lines(path: Path) -> list[dict[str, str]]:
    """The entries of a checkpoint file; an absent file has none."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Sequencer:
    """Runs ``sequence_once`` until stopped: at once while leaves wait, else every interval."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        origin: str,
        interval: float,
        batch_size: int = 10_000,
        topic: str | None = None,
        checkpoint_file: Path | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.origin = origin
        self.interval = interval
        self.batch_size = batch_size
        self.topic = topic
        self.file = CheckpointFile(checkpoint_file) if checkpoint_file else None

    def step(self) -> Batch:
        """One batch in its own transaction; the file copy only once it has committed."""
        try:
            with unit_of_work(self.session_factory) as session:
                batch = sequence_once(
                    session, origin=self.origin, batch_size=self.batch_size, topic=self.topic
                )
                key = session.scalar(
                    select(AuditCheckpoint.key_id).where(
                        AuditCheckpoint.tree_size == batch.tree_size
                    )
                )
        except LostRace:
            log.warning("audit.sequencer_lost_race")
            return Batch(0, -1)
        if self.file is not None and batch.note is not None and key:
            self.file.append(batch.note, key)
        return batch

    def run(self, stop: threading.Event) -> None:
        """Sequence until ``stop`` is set; a database outage is waited out, not fatal."""
        while not stop.is_set():
            try:
                batch = self.step()
            except DBAPIError as exc:
                log.warning("audit.sequencer_failed", extra={"error": repr(exc)})
                stop.wait(self.interval)
                continue
            if batch.leaves < self.batch_size:
                stop.wait(self.interval)
