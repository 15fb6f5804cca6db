"""Merkle trees of RFC 9162 (Certificate Transparency v2) over SHA-256, as pure functions.

The tree over entries ``D[0:n]`` is the RFC's ``MTH``: the empty tree hashes to
``SHA-256("")``, a leaf to ``SHA-256(0x00 || entry)``, and an inner node to
``SHA-256(0x01 || left || right)``, where the left subtree holds the largest power of two
strictly below ``n`` leaves.

Every hash a proof needs is the ``MTH`` of a range whose start is aligned to its size's
binary decomposition, so it folds from a handful of *perfect* subtrees (``2**level`` leaves
starting at ``index * 2**level``).  Proof generation therefore takes a lookup
``node(level, index) -> hash`` and asks only O(log n) of them: a store that keeps perfect
subtree hashes answers proofs at any size without touching the leaves.  Verification
follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.

:class:`CompactRange` keeps the "frontier" (the roots of the perfect subtrees that make up
the tree, largest first), which extends a tree by one leaf in amortised O(1) hashes, gives
the root in O(log n), and names the perfect subtrees each new leaf completes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeLookup = Callable[[int, int], bytes]
"""``node(level, index)``: root of the perfect subtree of leaves from ``index * 2**level``."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof is malformed for the sizes it claims (wrong length, bad sizes, bad hash size)."""


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n > 1``): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


# -- ranges and perfect subtrees -----------------------------------------------------------


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The perfect subtrees, left to right, whose right fold is ``MTH(D[start:end])``.

    Valid for the ranges that occur in RFC 9162 trees: ``start`` is a multiple of the
    largest power of two not above ``end - start``.
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative range [{start}, {end})")
    out: list[tuple[int, int]] = []
    lo = start
    while lo < end:
        size = 1 << ((end - lo).bit_length() - 1)
        if lo % size:
            raise ValueError(f"range [{start}, {end}) is not a subtree of an RFC 9162 tree")
        level = size.bit_length() - 1
        out.append((level, lo >> level))
        lo += size
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold of perfect subtree roots (largest first) into the range's MTH."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash(start: int, end: int, node: NodeLookup) -> bytes:
    return fold([node(level, index) for level, index in perfect_subtrees(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs make RFC 9162 ``PATH(index, D[size])``, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs make RFC 9162 ``PROOF(first, D[second])``, deepest first."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


def _nodes_of(ranges: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    return {coord for lo, hi in ranges for coord in perfect_subtrees(lo, hi)}


def root_nodes(size: int) -> set[tuple[int, int]]:
    return _nodes_of([(0, size)]) if size else set()


def inclusion_nodes(index: int, size: int) -> set[tuple[int, int]]:
    """Every perfect subtree :func:`inclusion_proof` will look up (to fetch them at once)."""
    return _nodes_of(inclusion_ranges(index, size)) | {(0, index)}


def consistency_nodes(first: int, second: int) -> set[tuple[int, int]]:
    return _nodes_of(consistency_ranges(first, second))


# -- proofs --------------------------------------------------------------------------------


def tree_root(size: int, node: NodeLookup) -> bytes:
    return range_hash(0, size, node) if size else EMPTY_ROOT


def inclusion_proof(index: int, size: int, node: NodeLookup) -> list[bytes]:
    return [range_hash(lo, hi, node) for lo, hi in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, node: NodeLookup) -> list[bytes]:
    return [range_hash(lo, hi, node) for lo, hi in consistency_ranges(first, second)]


def memory_nodes(leaf_hashes: Sequence[bytes]) -> NodeLookup:
    """A lookup over a tree held in memory: every level is built once, O(n)."""
    levels: list[list[bytes]] = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def node(level: int, index: int) -> bytes:
        return levels[level][index]

    return node


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    rng = CompactRange()
    for h in leaf_hashes:
        rng.append(h)
    return rng.root()


# -- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root ``proof`` yields for ``leaf`` at ``index``; :class:`ProofError` if malformed."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")
        if sn == 0:
            raise ProofError(f"inclusion proof has {len(proof)} elements, too many")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof has {len(proof)} elements, too few")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    try:
        computed = root_from_inclusion_proof(index, size, leaf, proof)
    except ProofError:
        return False
    return hmac.compare_digest(computed, root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, extended to the trivial cases: equal sizes, or an empty first tree."""
    if not 0 <= first <= second:
        return False
    if any(len(h) != HASH_SIZE for h in (first_root, second_root, *proof)):
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof and hmac.compare_digest(first_root, EMPTY_ROOT)
    roots = _roots_from_consistency_proof(first, second, first_root, proof)
    if roots is None:
        return False
    return hmac.compare_digest(roots[0], first_root) & hmac.compare_digest(roots[1], second_root)


def _roots_from_consistency_proof(
    first: int, second: int, first_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes] | None:
    """Steps 1-6 of RFC 9162 §2.1.4.2 for ``0 < first < second``; None where it says fail."""
    if not proof:
        return None
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (fr, sr) if sn == 0 else None


# -- incremental tree ----------------------------------------------------------------------


class CompactRange:
    """The frontier of a tree: roots of its perfect subtrees, largest first.

    There is one root per set bit of ``size``; appending a leaf merges equal-sized roots
    like a binary counter carries, so each append costs amortised one node hash.
    """

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {max(size, 0).bit_count()} frontier hashes, "
                f"not {len(hashes)}"
            )
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash is {len(h)} bytes, not {HASH_SIZE}")
        self.size = size
        self._hashes = list(hashes)

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add one leaf hash; returns the perfect subtrees it completed, level 1 upwards."""
        completed: list[bytes] = []
        acc, s, stack = leaf, self.size, self._hashes
        while s & 1:
            acc = node_hash(stack.pop(), acc)
            completed.append(acc)
            s >>= 1
        stack.append(acc)
        self.size += 1
        return completed

    def root(self) -> bytes:
        return fold(self._hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        if len(data) != size.bit_count() * HASH_SIZE:
            raise ValueError(
                f"frontier of a tree of size {size} needs {size.bit_count() * HASH_SIZE} "
                f"bytes, got {len(data)}"
            )
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self._hashes)
