"""Merkle tree hashing, audit paths and their verification, after RFC 6962 section 2.1
(Certificate Transparency), as restated in RFC 9162 section 2.1.

Leaves and interior nodes are domain-separated so that one can never pass for the other::

    MTH({d})    = SHA-256(0x00 || d)
    MTH(D[n])   = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k: largest power of 2 < n

The audit path of leaf m is PATH(m, D[n]) of RFC 6962 section 2.1.1, leaf-side first; it is
checked with the algorithm of RFC 9162 section 2.1.3.2. Here each leaf's data ``d`` is a
ledger entry's 32-byte hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over the leaves' data; the empty tree is not used by the ledger."""
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, leaves): the sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is outside a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*path(index, leaves[:k]), root(leaves[k:])]
    return [*path(index - k, leaves[k:]), root(leaves[:k])]


def root_from_path(index: int, size: int, leaf: bytes, audit_path: Sequence[bytes]) -> bytes:
    """The root that ``audit_path`` leads to from leaf ``index`` of a tree of ``size`` leaves
    (RFC 9162 section 2.1.3.2). Raises ValueError when the path cannot belong to such a
    tree (wrong length for the index and size)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is outside a tree of {size}")
    fn, sn = index, size - 1
    node = leaf_hash(leaf)
    for sibling in audit_path:
        if sn == 0:
            raise ValueError("the audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("the audit path is shorter than the tree is deep")
    return node
