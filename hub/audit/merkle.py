"""Merkle tree hashing, inclusion and consistency proofs as in RFC 9162 §2 (Certificate
Transparency 2.0), on SHA-256. Pure functions over bytes; nothing here touches a database.

The tree over n leaves is the RFC's MTH: leaf hashes are ``SHA-256(0x00 || data)``, interior
nodes ``SHA-256(0x01 || left || right)``, and a tree whose size is not a power of two splits at
the largest power of two below it. ``Frontier`` keeps only the roots of the perfect subtrees
along the right edge (at most log2 n hashes), which is all an append-only log needs to extend
the tree and compute its root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of one leaf's data."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass
class Frontier:
    """The right edge of a tree: one perfect subtree root per set bit of ``size``, largest
    (leftmost) first. Appending a leaf merges equal-sized subtrees like a binary counter."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, hashed_leaf: bytes) -> None:
        """Extend the tree by one leaf, given its leaf hash."""
        self.hashes.append(hashed_leaf)
        self.size += 1
        carry = self.size
        while carry % 2 == 0:
            right = self.hashes.pop()
            left = self.hashes.pop()
            self.hashes.append(node_hash(left, right))
            carry //= 2

    def root(self) -> bytes:
        """The tree head hash (MTH) of the leaves appended so far."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root

    def copy(self) -> Frontier:
        """An independent frontier at the same size."""
        return Frontier(self.size, list(self.hashes))

    def to_hex(self) -> list[str]:
        """The subtree roots as hex strings, for storing beside a checkpoint."""
        return [h.hex() for h in self.hashes]

    @classmethod
    def from_hex(cls, size: int, hashes: Sequence[str]) -> Frontier:
        """A frontier stored by ``to_hex``; refuses one whose shape cannot fit ``size``."""
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes")
        return cls(size, [bytes.fromhex(h) for h in hashes])


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes."""
    frontier = Frontier()
    for hashed in leaf_hashes:
        frontier.append(hashed)
    return frontier.root()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1: the audit path of leaf ``index`` in the tree over ``leaf_hashes``."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError(f"leaf {index} is not in a tree of size {len(leaf_hashes)}")
    return _path(index, leaf_hashes)


def inclusion_proof_from(
    index: int, size: int, subtree_root: Callable[[int, int], bytes]
) -> list[bytes]:
    """RFC 9162 §2.1.3.1 like :func:`inclusion_proof`, with the MTH of each sibling subtree
    asked of ``subtree_root(start, size)``: a log that keeps roots of complete subtrees
    answers in O(log n) look-ups instead of hashing every leaf."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    siblings: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            siblings.append(subtree_root(start + k, n - k))
            n = k
        else:
            siblings.append(subtree_root(start, k))
            start, m, n = start + k, m - k, n - k
    return siblings[::-1]  # the audit path runs from the leaf up


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), root_of(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_of(leaves[:k])]


def root_from_inclusion(index: int, size: int, hashed_leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that an inclusion proof leads to; ValueError if malformed."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, hashed_leaf
    for p in proof:
        if sn == 0:
            raise ValueError("the proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is shorter than the tree is deep")
    return r


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1: proof that the tree of ``old_size`` leaves is a prefix of this one."""
    if not 0 < old_size <= len(leaf_hashes):
        raise ValueError(f"no consistency proof from {old_size} to {len(leaf_hashes)}")
    return _subproof(old_size, leaf_hashes, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete=complete), root_of(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], complete=False), root_of(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: True if the proof shows the old tree is a prefix of the new one."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
