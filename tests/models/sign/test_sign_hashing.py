"""Hashing: digests equal the reference hash of the same bytes, for every piece and thread count."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.models.sign.hashing import (
    FileEntry,
    HashSpec,
    Piece,
    hash_piece,
    hash_pieces,
    list_files,
    plan,
)


def reference(algorithm: str, data: bytes, size: int | None = None) -> bytes:
    if algorithm == "sha256":
        return hashlib.sha256(data).digest()
    if algorithm == "blake2b":
        return hashlib.blake2b(data, digest_size=size or 64).digest()
    return blake3.blake3(data).digest(length=size or 32)


@given(size=st.integers(0, 10_000), shard=st.integers(1, 3_000))
def test_shard_ranges_tile_the_file_like_model_signing(size: int, shard: int) -> None:
    ranges = HashSpec(shard_size=shard).ranges(size)
    if size == 0:
        assert ranges == []  # model_signing records no shard for an empty file
        return
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(end - start <= shard for start, end in ranges)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    # model_signing's endpoints: step, 2*step, ..., and always the end itself.
    assert [end for _, end in ranges] == [*range(shard, size, shard), size]
    assert HashSpec(shard_size=None).ranges(size) == [(0, size)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 70_000), min_size=1, max_size=5),
    shard=st.one_of(st.none(), st.integers(1, 50_000)),
    algorithm=st.sampled_from(["sha256", "blake2b", "blake3"]),
    workers=st.integers(1, 4),
)
def test_every_piece_digest_is_the_reference_digest_of_its_bytes(
    tmp_path: Path, sizes: list[int], shard: int | None, algorithm: str, workers: int
) -> None:
    files = []
    contents = {}
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        path = tmp_path / f"f{i}-{size}-{shard}-{algorithm}-{workers}"
        path.write_bytes(data)
        files.append(FileEntry(path.name, path, size))
        contents[path.name] = data
    spec = HashSpec(algorithm=algorithm, shard_size=shard)
    pieces = plan(files, spec)
    digests = hash_pieces(pieces, spec, workers=workers)
    assert len(digests) == len(pieces)
    for piece, digest in zip(pieces, digests, strict=True):
        assert digest == reference(algorithm, contents[piece.file.name][piece.start : piece.end])


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b", "blake3"])
def test_large_files_cross_buffer_and_thread_boundaries(tmp_path: Path, algorithm: str) -> None:
    data = os.urandom(21 * 1024 * 1024 + 13)  # over two 8 MiB read buffers, odd length
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    entry = FileEntry("big.bin", path, len(data))
    whole = HashSpec(algorithm=algorithm, shard_size=None)
    assert hash_pieces(plan([entry], whole), whole, workers=4) == [reference(algorithm, data)]
    # blake3's own threads over a mapped file give the same digest as one thread
    assert hash_piece(Piece(entry, 0, len(data)), whole, threads=4) == reference(algorithm, data)
    # pieces read into a buffer and pieces mapped from any offset, aligned or not
    for start, end in ((5, 9_000_001), (4_194_304, 9_437_184), (7_340_033, len(data)),
                       (1_000_000, 1_900_000), (20_000_000, 21_000_000)):
        for threads in (1, 3):
            assert hash_piece(Piece(entry, start, end), whole, threads=threads) == reference(
                algorithm, data[start:end]
            ), (start, end, threads)


@pytest.mark.parametrize("algorithm,size", [("blake2b", 32), ("blake3", 64), ("blake3", 16)])
def test_digest_size_is_a_recorded_parameter(tmp_path: Path, algorithm: str, size: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    spec = HashSpec(algorithm=algorithm, shard_size=None, digest_size=size)
    (digest,) = hash_pieces(plan([FileEntry("f", path, 3000)], spec), spec)
    assert digest == reference(algorithm, b"abc" * 1000, size)


def test_impossible_parameters_are_refused() -> None:
    with pytest.raises(InputError, match="unknown hash algorithm 'md5'"):
        HashSpec(algorithm="md5")
    with pytest.raises(InputError, match="positive"):
        HashSpec(shard_size=0)
    with pytest.raises(InputError, match="digest size 16 is not possible with sha256"):
        HashSpec(digest_size=16)
    for bad in ("", ".", "..", "../x", "a/../../b"):
        with pytest.raises(InputError, match="not a path inside the model"):
            HashSpec(ignore_paths=(bad,))


def test_a_file_that_changes_size_while_hashed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "grows"
    path.write_bytes(b"x" * 100)
    listed = FileEntry("grows", path, 100)
    path.write_bytes(b"x" * 150)  # written after it was listed
    spec = HashSpec(shard_size=None)
    with pytest.raises(InputError, match="grows changed while it was being hashed"):
        hash_pieces(plan([listed], spec), spec)
    path.unlink()
    with pytest.raises(InputError, match="cannot read grows"):
        hash_pieces(plan([listed], spec), spec)


def test_walk_names_files_posix_style_and_honours_ignores(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.bin").write_bytes(b"1")
    (tmp_path / "a-c").write_bytes(b"2")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_bytes(b"ref")
    (tmp_path / ".gitattributes").write_bytes(b"*")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "x").write_bytes(b"3")
    spec = HashSpec(ignore_paths=(".git", ".gitattributes", "skip/"))
    names = [f.name for f in list_files(tmp_path, spec)]
    # path-component order, as model_signing sorts: "a/b/c.bin" before "a-c"
    assert names == ["a/b/c.bin", "a-c"]
    assert [f.name for f in list_files(tmp_path / "a-c", spec)] == ["."]
    assert [f.name for f in list_files(tmp_path, HashSpec(ignore_paths=()))] == [
        ".git/HEAD", ".gitattributes", "a/b/c.bin", "a-c", "skip/x"
    ]


def test_links_are_refused_unless_allowed_then_followed(tmp_path: Path) -> None:
    (tmp_path / "real.bin").write_bytes(b"data")
    (tmp_path / "link.bin").symlink_to(tmp_path / "real.bin")
    with pytest.raises(InputError, match=r"link\.bin is a symbolic link"):
        list_files(tmp_path, HashSpec())
    files = list_files(tmp_path, HashSpec(allow_symlinks=True))
    assert [(f.name, f.size) for f in files] == [("link.bin", 4), ("real.bin", 4)]
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    with pytest.raises(InputError, match="broken symbolic link"):
        list_files(tmp_path, HashSpec(allow_symlinks=True))


def test_a_link_loop_is_refused_not_followed_forever(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1")
    (tmp_path / "d" / "up").symlink_to(tmp_path / "d")
    with pytest.raises(InputError, match="loop"):
        list_files(tmp_path, HashSpec(allow_symlinks=True))


def test_special_files_and_bad_names_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match="pipe is not a regular file"):
        list_files(tmp_path, HashSpec())
    (tmp_path / "pipe").unlink()
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9.bin")
    with open(bad, "wb") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match="not valid UTF-8"):
        list_files(tmp_path, HashSpec())
    with pytest.raises(InputError, match="no such file or directory"):
        list_files(tmp_path / "absent", HashSpec())
