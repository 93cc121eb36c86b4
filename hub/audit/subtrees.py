"""Roots of the log's subtrees for inclusion proofs, without hashing every leaf each time.

An inclusion proof needs the roots (MTH) of about log2 n sibling subtrees, and the largest
covers half the log: computed from the leaves, every proof costs O(n) (2.8 s at a million
leaves). The roots of complete, aligned blocks of ``BLOCK`` leaves never change once their
leaves are sequenced, so each process keeps them (32 bytes a block, 125 KiB per million
leaves) and a proof then hashes at most n / BLOCK block roots and a few hundred leaves.

The cache is trusted for speed only: :func:`hub.audit.verify.prove` checks every proof it
builds against the checkpoint's root and, if they differ (a database restored to another
history, or changed under us), forgets the cache and builds the proof from the leaves again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, MutableMapping
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hub.audit.merkle import _split, node_hash, root_of
from hub.audit.models import AuditRecord

BLOCK = 256
_CACHES: WeakKeyDictionary[Engine, dict[int, bytes]] = WeakKeyDictionary()
_LOCK = threading.Lock()

#: Reads the leaf hashes of leaves [start, end), in order.
LeafReader = Callable[[int, int], list[bytes]]


class Subtrees:
    """MTH of any subtree ``[start, start + size)`` of the tree of RFC 9162, from leaf hashes
    and cached roots of complete blocks (``block`` leaves, a power of two)."""

    def __init__(
        self, read: LeafReader, blocks: MutableMapping[int, bytes], block: int = BLOCK
    ) -> None:
        self._read = read
        self._blocks = blocks
        self._block = block

    def root(self, start: int, size: int) -> bytes:
        """The MTH of leaves ``[start, start + size)``; ``start`` is aligned to the largest
        power of two not above ``size``, as every subtree of the tree is."""
        b = self._block
        if start % b == 0 and size % b == 0:
            # The tree's splits of a block-aligned range fall on block boundaries, so its
            # MTH is the MTH over the blocks' roots.
            return root_of(self._block_roots(start // b, size // b))
        if size <= b:
            return root_of(self._read(start, start + size))
        k = _split(size)
        return node_hash(self.root(start, k), self.root(start + k, size - k))

    def _block_roots(self, first: int, count: int) -> list[bytes]:
        missing = [j for j in range(first, first + count) if j not in self._blocks]
        if missing:
            b = self._block
            leaves = self._read(missing[0] * b, (missing[-1] + 1) * b)
            for j in missing:
                offset = (j - missing[0]) * b
                self._blocks[j] = root_of(leaves[offset : offset + b])
        return [self._blocks[j] for j in range(first, first + count)]


def of_session(session: Session, *, fresh: bool = False) -> Subtrees:
    """Subtrees of the log in ``session``'s database, with this process's block cache (an
    empty one that replaces it with ``fresh``)."""
    engine = session.get_bind().engine
    with _LOCK:
        if fresh or engine not in _CACHES:
            _CACHES[engine] = {}
        blocks = _CACHES[engine]

    def read(start: int, end: int) -> list[bytes]:
        rows = session.scalars(
            select(AuditRecord.leaf_hash)
            .where(AuditRecord.leaf_index >= start, AuditRecord.leaf_index < end)
            .order_by(AuditRecord.leaf_index)
        ).all()
        if len(rows) != end - start:
            raise LookupError(f"leaves {start}..{end - 1} are not all sequenced")
        return [bytes.fromhex(h or "") for h in rows]

    return Subtrees(read, blocks)
