"""Checking the audit log, and proving one leaf's inclusion to someone who trusts only the key.

``verify`` rebuilds the Merkle tree from the leaves and holds it against every signed
checkpoint: those in the database and, when given, those kept outside it (the checkpoint
file, or the Kafka topic's copy). Which keys it trusts matters: an attacker who can write to
the database can add a key of their own and re-sign a rewritten history, so with a
checkpoint file or pinned keys only those outside keys count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from hub.audit import subtrees
from hub.audit.keys import published_keys
from hub.audit.merkle import Frontier, inclusion_proof_from, leaf_hash, root_from_inclusion
from hub.audit.models import AuditCheckpoint, AuditRecord
from hub.audit.note import Checkpoint, NoteError, VerifierKey, open_checkpoint
from hub.audit.sequencer import read_lines
from hub.audit.service import leaf_bytes

# Keyset pages: verifying a million leaves holds one page in memory, not the log.
BATCH = 1000
DATABASE = "database"
FILE = "checkpoint file"


@dataclass
class VerifyReport:
    """The outcome of checking the log; each problem names the first leaf or checkpoint it
    concerns (``leaf N`` / ``checkpoint N``, N its index or tree size)."""

    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    checkpoints: int = 0
    waiting: int = 0


@dataclass
class _Signed:
    source: str
    checkpoint: Checkpoint
    frontier: list[str] | None = None


def verify(
    session: Session,
    *,
    checkpoint_file: Path | None = None,
    trusted_keys: list[VerifierKey] | None = None,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every leaf against its hash and the tree against every signed checkpoint."""
    problems: list[str] = []
    file_lines = read_lines(checkpoint_file) if checkpoint_file else []
    keys = _trusted(session, trusted_keys, file_lines)
    # The latest size first, in one statement with the check for leaves beyond it, so that
    # a batch committed while we read cannot look like a forged leaf.
    newest = session.scalar(select(func.max(AuditCheckpoint.tree_size))) or 0
    signed = _database_checkpoints(session, keys, newest, problems)
    signed += _file_checkpoints(file_lines, keys, problems)
    by_size: dict[int, list[_Signed]] = {}
    for s in signed:
        by_size.setdefault(s.checkpoint.size, []).append(s)
    checked, broken = _walk(session, by_size, batch, problems, progress)
    if broken and any(size > checked for size in by_size):
        problems.append(
            f"checkpoint {min(s for s in by_size if s > checked)}: not checked, nor any later "
            f"one: the tree cannot be rebuilt past the missing leaf {checked}"
        )
    for size in sorted(s for s in by_size if s > checked and not broken):
        sources = " and ".join(sorted({s.source for s in by_size[size]}))
        problems.append(
            f"checkpoint {size}: signed in the {sources}, but the log has only {checked} "
            f"leaves (leaves {checked}-{size - 1} removed, or the database rolled back)"
        )
    _check_beyond(session, problems)
    waiting = session.scalar(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.leaf_index.is_(None))
    )
    return VerifyReport(
        ok=not problems,
        checked=checked,
        problems=problems,
        checkpoints=len(by_size),
        waiting=int(waiting or 0),
    )


def _trusted(
    session: Session, pinned: list[VerifierKey] | None, file_lines: list[dict[str, str]]
) -> list[VerifierKey]:
    if pinned:
        return pinned
    outside = [VerifierKey.parse(line["key"]) for line in file_lines if "key" in line]
    return outside or published_keys(session)


def _database_checkpoints(
    session: Session, keys: list[VerifierKey], upto: int, problems: list[str]
) -> list[_Signed]:
    rows = session.execute(
        select(AuditCheckpoint.tree_size, AuditCheckpoint.note, AuditCheckpoint.frontier)
        .where(AuditCheckpoint.tree_size <= upto)
        .order_by(AuditCheckpoint.tree_size)
    )
    found = []
    for size, note, frontier in rows:
        try:
            checkpoint, _ = open_checkpoint(note, keys)
        except NoteError as exc:
            problems.append(f"checkpoint {size}: {exc}")
            continue
        if checkpoint.size != size:
            problems.append(f"checkpoint {size}: its signed note says size {checkpoint.size}")
            continue
        # The sequencer keeps a frontier with the newest checkpoint only.
        kept = frontier if frontier or size == upto else None
        found.append(_Signed(DATABASE, checkpoint, kept))
    return found


def _file_checkpoints(
    lines: list[dict[str, str]], keys: list[VerifierKey], problems: list[str]
) -> list[_Signed]:
    found = []
    for number, line in enumerate(lines, start=1):
        if "checkpoint" not in line:
            continue
        try:
            checkpoint, _ = open_checkpoint(line["checkpoint"], keys)
        except NoteError as exc:
            problems.append(f"checkpoint in {FILE} line {number}: {exc}")
            continue
        found.append(_Signed(FILE, checkpoint))
    return found


def _walk(
    session: Session,
    by_size: dict[int, list[_Signed]],
    batch: int,
    problems: list[str],
    progress: Callable[[int], None] | None,
) -> tuple[int, bool]:
    """Rebuild the tree leaf by leaf: how many leaves form an unbroken prefix, and whether a
    gap ended it."""
    frontier = Frontier()
    last_good = 0
    broken = False
    for row in _leaves(session, batch):
        index = row.leaf_index
        if index != frontier.size:
            problems.append(
                f"leaf {frontier.size}: missing (the next leaf is {index}); "
                f"leaves {frontier.size}-{index - 1} removed"
            )
            broken = True
            break
        hashed = leaf_hash(leaf_bytes(row._mapping))
        if row.leaf_hash != hashed.hex():
            problems.append(f"leaf {index} (seq {row.seq}): content does not match its leaf hash")
        frontier.append(hashed)
        if frontier.size in by_size and _check_root(
            frontier, by_size[frontier.size], last_good, problems
        ):
            last_good = frontier.size
        if progress is not None and frontier.size % 100_000 == 0:
            progress(frontier.size)
    return frontier.size, broken


def _check_root(
    frontier: Frontier, signed: list[_Signed], last_good: int, problems: list[str]
) -> bool:
    root, size, good = frontier.root(), frontier.size, True
    for s in signed:
        if s.checkpoint.root != root:
            problems.append(
                f"checkpoint {size} ({s.source}): the leaves do not give its signed root; "
                f"a leaf in {last_good}-{size - 1} was altered, removed or moved"
            )
            good = False
        elif s.frontier is not None and s.frontier != frontier.to_hex():
            problems.append(f"checkpoint {size} ({s.source}): its stored frontier was altered")
            good = False
    return good


def _check_beyond(session: Session, problems: list[str]) -> None:
    # One statement, one snapshot: a batch commits its leaves and its checkpoint together.
    latest = select(func.coalesce(func.max(AuditCheckpoint.tree_size), 0)).scalar_subquery()
    first = session.scalar(
        select(func.min(AuditRecord.leaf_index)).where(AuditRecord.leaf_index >= latest)
    )
    if first is not None:
        problems.append(f"leaf {first}: numbered but under no signed checkpoint (added by hand)")


def _leaves(session: Session, batch: int) -> Iterator[Row[Any]]:
    after = -1
    while True:
        page = session.execute(
            select(AuditRecord.__table__)
            .where(AuditRecord.leaf_index > after)
            .order_by(AuditRecord.leaf_index)
            .limit(batch)
        ).all()
        yield from page
        if len(page) < batch:
            return
        after = page[-1].leaf_index


def prove(session: Session, *, leaf_index: int) -> dict[str, Any]:
    """An inclusion proof of one leaf against the newest checkpoint, checkable with the key."""
    latest = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).first()
    if latest is None or not 0 <= leaf_index < latest.tree_size:
        size = latest.tree_size if latest else 0
        raise LookupError(f"leaf {leaf_index} is not under the newest checkpoint (size {size})")
    row = session.execute(
        select(AuditRecord.__table__).where(AuditRecord.leaf_index == leaf_index)
    ).one()
    size, hashed = latest.tree_size, bytes.fromhex(row.leaf_hash or "")
    proof = inclusion_proof_from(leaf_index, size, subtrees.of_session(session).root)
    if root_from_inclusion(leaf_index, size, hashed, proof).hex() != latest.root_hash:
        # The cached block roots belong to another history (a restored database) or the
        # leaves changed: build the proof from the leaves alone. If it still does not lead to
        # the signed root, the proof shows it to whoever checks it.
        proof = inclusion_proof_from(
            leaf_index, size, subtrees.of_session(session, fresh=True).root
        )
    return {
        "leaf_index": leaf_index,
        "tree_size": latest.tree_size,
        "leaf": leaf_bytes(row._mapping).decode(),
        "proof": [p.hex() for p in proof],
        "checkpoint": latest.note,
        "key": latest.key_id,
    }
