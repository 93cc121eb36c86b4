"""RFC 9162 Merkle trees: the incremental frontier, inclusion and consistency proofs agree with
the RFC's recursive definitions, and a proof fails for any other leaf, index or root."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    root_of,
    verify_consistency,
)


def mth(data: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, literally."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def test_known_shapes() -> None:
    a, b, c = (leaf_hash(x) for x in leaves(3))
    assert root_of([]) == EMPTY_ROOT
    assert root_of([a]) == a
    assert root_of([a, b, c]) == node_hash(node_hash(a, b), c)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=70))
def test_frontier_root_is_the_rfc_root_at_every_size(n: int) -> None:
    data = leaves(n)
    frontier = Frontier()
    for i, d in enumerate(data):
        frontier.append(leaf_hash(d))
        assert frontier.root() == mth(data[: i + 1])
    stored = Frontier.from_hex(frontier.size, frontier.to_hex())
    assert stored.root() == mth(data)


def test_a_frontier_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        Frontier.from_hex(3, ["00" * 32])


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_inclusion_proofs_lead_to_the_root_and_only_for_that_leaf(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=64))
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    hashes = [leaf_hash(d) for d in leaves(n)]
    proof = inclusion_proof(m, hashes)
    assert root_from_inclusion(m, n, hashes[m], proof) == mth(leaves(n))
    assert root_from_inclusion(m, n, leaf_hash(b"forged"), proof) != mth(leaves(n))
    if n > 1:
        other = (m + 1) % n
        # A proof of another depth is malformed for that index: refused as well.
        with contextlib.suppress(ValueError):
            assert root_from_inclusion(other, n, hashes[m], proof) != mth(leaves(n))


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_consistency_proofs_hold_for_prefixes_and_fail_for_rewrites(data: st.DataObject) -> None:
    new = data.draw(st.integers(min_value=1, max_value=64))
    old = data.draw(st.integers(min_value=1, max_value=new))
    hashes = [leaf_hash(d) for d in leaves(new)]
    proof = consistency_proof(old, hashes)
    old_root, new_root = mth(leaves(old)), mth(leaves(new))
    assert verify_consistency(old, new, old_root, new_root, proof)
    rewritten = mth([b"rewritten", *leaves(old)[1:]])
    assert not verify_consistency(old, new, rewritten, new_root, proof)
    if old < new:
        assert not verify_consistency(old, new, old_root, mth(leaves(new - 1)), proof)


def test_proofs_from_cached_block_roots_equal_proofs_from_every_leaf() -> None:
    """Every leaf of every tree up to 70 leaves, blocks of 4, one cache for the growing log
    (as a process keeps it), and the leaves actually read counted."""
    from hub.audit.merkle import inclusion_proof_from
    from hub.audit.subtrees import Subtrees

    hashes = [leaf_hash(d) for d in leaves(70)]
    read: list[int] = []

    def reader(start: int, end: int) -> list[bytes]:
        read.append(end - start)
        return hashes[start:end]

    blocks: dict[int, bytes] = {}
    for n in range(1, 71):
        subtrees = Subtrees(reader, blocks, block=4)
        assert subtrees.root(0, n) == mth(leaves(n))
        for m in range(n):
            assert inclusion_proof_from(m, n, subtrees.root) == inclusion_proof(m, hashes[:n])
    # Warm, a proof in the 70-leaf tree reads at most a block's worth of leaves per level.
    read.clear()
    inclusion_proof_from(0, 70, Subtrees(reader, blocks, block=4).root)
    assert sum(read) <= 4 * 7


def test_a_wrong_cached_block_gives_a_proof_that_fails_and_is_seen() -> None:
    from hub.audit.merkle import inclusion_proof_from
    from hub.audit.subtrees import Subtrees

    hashes = [leaf_hash(d) for d in leaves(40)]
    blocks = {0: leaf_hash(b"another history")}
    proof = inclusion_proof_from(39, 40, Subtrees(lambda a, b: hashes[a:b], blocks, 4).root)
    assert root_from_inclusion(39, 40, hashes[39], proof) != mth(leaves(40))
