"""RFC 9162 Merkle trees: published test vectors, the RFC's recursive definitions, properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsuba.core.audit import merkle

# The RFC 6962 test-vector leaves used across Certificate Transparency implementations.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# (leaf index, tree size, path)
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
# (first size, second size, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# -- the RFC's definitions, written as literally as possible, as the reference --------------

def rfc_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def entries(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") + b"entry" for i in range(n)]


def leaf_hashes(data: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(x) for x in data]


# -- published vectors -------------------------------------------------------------------

def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.root_of([]) == merkle.EMPTY_ROOT
    assert merkle.tree_root(0, merkle.memory_nodes([])) == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_vectors(size: int) -> None:
    hashes = leaf_hashes(LEAVES[:size])
    assert merkle.root_of(hashes) == ROOTS[size - 1]
    assert merkle.tree_root(size, merkle.memory_nodes(hashes)) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_vectors(index: int, size: int, path: list[str]) -> None:
    hashes = leaf_hashes(LEAVES[:size])
    proof = merkle.inclusion_proof(index, size, merkle.memory_nodes(hashes))
    assert [p.hex() for p in proof] == path
    assert merkle.verify_inclusion(index, size, hashes[index], proof, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_vectors(first: int, second: int, path: list[str]) -> None:
    hashes = leaf_hashes(LEAVES[:second])
    proof = merkle.consistency_proof(first, second, merkle.memory_nodes(hashes))
    assert [p.hex() for p in proof] == path
    assert merkle.verify_consistency(first, second, ROOTS[first - 1], ROOTS[second - 1], proof)


def _inclusion_probes(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes):
    yield "index-1", (index - 1, size, leaf, proof, root)
    yield "index+1", (index + 1, size, leaf, proof, root)
    yield "index^2", (index ^ 2, size, leaf, proof, root)
    yield "size*2", (index, size * 2, leaf, proof, root)
    yield "size/2", (index, size // 2, leaf, proof, root)
    yield "wrong leaf", (index, size, b"WrongLeaf", proof, root)
    yield "empty root", (index, size, leaf, proof, merkle.EMPTY_ROOT)
    yield "random root", (index, size, leaf, proof, SOME_HASH)
    yield "trailing garbage", (index, size, leaf, [*proof, b""], root)
    yield "trailing root", (index, size, leaf, [*proof, root], root)
    yield "preceding garbage", (index, size, leaf, [b"", *proof], root)
    yield "preceding root", (index, size, leaf, [root, *proof], root)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        yield f"flipped proof[{i}]", (index, size, leaf, bad, root)
    if proof:
        yield "removed element", (index, size, leaf, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted element", (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[1:])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, path: list[str]) -> None:
    proof = [bytes.fromhex(p) for p in path]
    leaf = merkle.leaf_hash(LEAVES[index])
    for name, (i, n, lf, pr, rt) in _inclusion_probes(index, size, leaf, proof, ROOTS[size - 1]):
        assert not merkle.verify_inclusion(i, n, lf, pr, rt), name


def _consistency_probes(m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes]):
    yield "m-1", (m - 1, n, r1, r2, proof)
    yield "m+1", (m + 1, n, r1, r2, proof)
    yield "m^2", (m ^ 2, n, r1, r2, proof)
    yield "n*2", (m, n * 2, r1, r2, proof)
    yield "n/2", (m, n // 2, r1, r2, proof)
    yield "wrong root1", (m, n, b"WrongRoot" + bytes(23), r2, proof)
    yield "wrong root2", (m, n, r1, b"WrongRoot" + bytes(23), proof)
    yield "swapped roots", (m, n, r2, r1, proof)
    yield "empty proof", (m, n, r1, r2, [])
    yield "trailing garbage", (m, n, r1, r2, [*proof, b""])
    yield "trailing root1", (m, n, r1, r2, [*proof, r1])
    yield "trailing root2", (m, n, r1, r2, [*proof, r2])
    yield "preceding garbage", (m, n, r1, r2, [b"", *proof])
    yield "preceding root1", (m, n, r1, r2, [r1, *proof])
    yield "preceding root2", (m, n, r1, r2, [r2, *proof])
    yield "preceding proof[0]", (m, n, r1, r2, [proof[0], *proof])
    yield "truncated", (m, n, r1, r2, proof[:-1])
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        yield f"flipped proof[{i}]", (m, n, r1, r2, bad)


@pytest.mark.parametrize(("first", "second", "path"), [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_fail(first: int, second: int, path: list[str]) -> None:
    proof = [bytes.fromhex(p) for p in path]
    r1, r2 = ROOTS[first - 1], ROOTS[second - 1]
    for name, args in _consistency_probes(first, second, r1, r2, proof):
        assert not merkle.verify_consistency(*args), name


def test_trivial_consistency_cases() -> None:
    r = ROOTS[0]
    assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, ROOTS[4], [])
    assert not merkle.verify_consistency(0, 5, SOME_HASH, ROOTS[4], [])  # not the empty root
    assert merkle.verify_consistency(1, 1, r, r, [])
    assert not merkle.verify_consistency(1, 1, r, ROOTS[1], [])  # same size, other root
    assert not merkle.verify_consistency(1, 1, r, r, [merkle.EMPTY_ROOT])  # needless proof
    assert not merkle.verify_consistency(2, 1, r, r, [])  # time travel
    assert not merkle.verify_consistency(1, 2, r, ROOTS[1], [])  # missing proof


def test_malformed_inclusion_inputs_raise_proof_error() -> None:
    leaf = merkle.leaf_hash(b"x")
    with pytest.raises(merkle.ProofError, match="outside"):
        merkle.root_from_inclusion_proof(1, 1, leaf, [])
    with pytest.raises(merkle.ProofError, match="leaf hash is 3 bytes"):
        merkle.root_from_inclusion_proof(0, 1, b"abc", [])
    with pytest.raises(merkle.ProofError, match="too many"):
        merkle.root_from_inclusion_proof(0, 1, leaf, [leaf])
    with pytest.raises(merkle.ProofError, match="too few"):
        merkle.root_from_inclusion_proof(0, 4, leaf, [leaf])


def test_ranges_reject_impossible_requests() -> None:
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_ranges(4, 4)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_ranges(5, 4)
    with pytest.raises(ValueError, match="not a subtree"):
        merkle.perfect_subtrees(1, 3)


# -- agreement with the RFC's recursive definitions ----------------------------------------

@pytest.mark.parametrize("n", range(1, 34))
def test_proofs_equal_rfc_definitions_for_small_trees(n: int) -> None:
    data = entries(n)
    node = merkle.memory_nodes(leaf_hashes(data))
    assert merkle.tree_root(n, node) == rfc_mth(data)
    for m in range(n):
        assert merkle.inclusion_proof(m, n, node) == rfc_path(m, data)
    for m in range(1, n + 1):
        assert merkle.consistency_proof(m, n, node) == rfc_subproof(m, data, True)


# -- properties ----------------------------------------------------------------------------

def _flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_every_inclusion_proof_verifies_and_any_bit_flip_fails(n: int, data: st.DataObject) -> None:
    hashes = leaf_hashes(entries(n))
    node = merkle.memory_nodes(hashes)
    root = merkle.tree_root(n, node)
    for i in range(n):
        assert merkle.verify_inclusion(i, n, hashes[i], merkle.inclusion_proof(i, n, node), root)
    i = data.draw(st.integers(0, n - 1), label="index")
    proof = merkle.inclusion_proof(i, n, node)
    target = data.draw(st.integers(0, len(proof) + 1), label="what to flip")
    bit = data.draw(st.integers(0, 255), label="bit")
    leaf, rt = hashes[i], root
    if target < len(proof):
        proof[target] = _flip(proof[target], bit)
    elif target == len(proof):
        leaf = _flip(leaf, bit)
    else:
        rt = _flip(rt, bit)
    assert not merkle.verify_inclusion(i, n, leaf, proof, rt)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_every_consistency_proof_verifies_and_fails_for_another_old_root(
    n: int, data: st.DataObject
) -> None:
    hashes = leaf_hashes(entries(n))
    node = merkle.memory_nodes(hashes)
    new_root = merkle.tree_root(n, node)
    m = data.draw(st.integers(0, n), label="first")
    old_root = merkle.tree_root(m, node)
    proof = merkle.consistency_proof(m, n, node)
    assert merkle.verify_consistency(m, n, old_root, new_root, proof)
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not merkle.verify_consistency(m, n, _flip(old_root, bit), new_root, proof)
    if m:  # the empty tree is a prefix of every tree, whatever its root
        assert not merkle.verify_consistency(m, n, old_root, _flip(new_root, bit), proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1), label="element")
        bad = list(proof)
        bad[k] = _flip(bad[k], bit)
        assert not merkle.verify_consistency(m, n, old_root, new_root, bad)
    if 0 < m < n:
        other = [*leaf_hashes(entries(m - 1)), merkle.leaf_hash(b"forged")]
        assert not merkle.verify_consistency(m, n, merkle.root_of(other), new_root, proof)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200))
def test_compact_range_tracks_root_and_completed_subtrees(n: int) -> None:
    hashes = leaf_hashes(entries(n))
    node = merkle.memory_nodes(hashes) if n else None
    rng = merkle.CompactRange()
    for i, h in enumerate(hashes):
        completed = rng.append(h)
        # leaf i completes one perfect subtree per trailing one-bit of i
        assert len(completed) == (~i & (i + 1)).bit_length() - 1
        assert node is not None
        for level, value in enumerate(completed, start=1):
            assert value == node(level, ((i + 1) >> level) - 1)
        assert rng.root() == merkle.root_of(hashes[: i + 1])
    assert rng.size == n
    again = merkle.CompactRange.from_bytes(n, rng.to_bytes())
    assert again.root() == rng.root() == merkle.root_of(hashes)


def test_compact_range_rejects_a_frontier_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="needs 64 bytes"):
        merkle.CompactRange.from_bytes(3, bytes(32))
    with pytest.raises(ValueError, match="frontier hashes"):
        merkle.CompactRange(2, [bytes(32), bytes(32)])
