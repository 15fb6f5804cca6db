"""Hashing a model's files: one digest per file or per shard, in parallel, every parameter named.

Threads, not processes: hashlib and blake3 release the GIL while they hash a large buffer, so
a thread per core keeps every core busy without pickling data between processes.  SHA-256
and BLAKE2b cannot split one file's digest across cores, so large files are cut into shards
that are hashed side by side; BLAKE3 is a tree hash and spreads one file over every core on
its own, so it needs no shards.

Large pieces are hashed straight from a memory mapping of the file, which spares copying
every byte through a buffer (about 7% of the CPU time of SHA-256 here); small ones are read
into a reused buffer.  A mapped file that another process truncates while it is hashed ends
this process with SIGBUS, as with b3sum and model_signing: hash files nothing is writing.

A :class:`HashSpec` holds every parameter that changes a digest.  It is written into the
signature and read back from it, so a verifier rebuilds the same hasher from the signature
alone instead of guessing.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import blake3

from tsuba.core.errors import InputError

Algorithm = Literal["sha256", "blake2b", "blake3"]

# Digest size of each algorithm in bytes, as hashlib and blake3 produce it by default.
DIGEST_SIZES: dict[str, int] = {"sha256": 32, "blake2b": 64, "blake3": 32}
# Names accepted on input; "blake2" is what model_signing's configuration calls BLAKE2b.
_ALIASES = {"sha256": "sha256", "blake2": "blake2b", "blake2b": "blake2b", "blake3": "blake3"}
# model_signing's default shard size, so that its verifier's defaults match ours.
DEFAULT_SHARD_SIZE = 1_000_000_000
# Paths model_signing leaves out by default: version-control metadata, not model content.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
SINGLE_FILE = "."  # the one resource name of a model that is a single file

_BUFFER = 1 << 20  # read size for small pieces: fits the core's cache, so no second trip
_MAP_MIN = 1 << 20  # pieces this large are hashed straight from a mapping of the file
_MAP_STEP = 64 << 20  # bytes per hash update from a mapping (the GIL is released inside)
_BLAKE3_STEP = 256 << 20  # blake3 splits each update over its threads: give it a lot
_PREFETCH = 2  # windows of a mapped piece asked for ahead of the one being hashed
_FADVISE = getattr(os, "posix_fadvise", None)  # Linux and most Unixes; not macOS
_BLAKE3_PARALLEL_MIN = 4 << 20  # smaller files gain nothing from blake3's own threads


def canonical_algorithm(name: str) -> str:
    """``sha256``, ``blake2b`` or ``blake3`` for any accepted spelling; InputError otherwise."""
    try:
        return _ALIASES[name.strip().lower()]
    except (KeyError, AttributeError):
        raise InputError(
            f"unknown hash algorithm {name!r}: use sha256, blake2 (BLAKE2b) or blake3"
        ) from None


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every platform has affinity
        return max(1, os.cpu_count() or 1)


def _normalise_ignore(entry: str) -> str:
    text = entry.replace("\\", "/").strip("/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(
            f"ignore path {entry!r} is not a path inside the model: name a file or folder "
            "relative to the model root"
        )
    return "/".join(parts)


@dataclass(frozen=True)
class HashSpec:
    """Everything that decides a manifest's digests.

    ``shard_size`` None hashes each file whole (model_signing's ``files`` method); a size
    cuts each file into pieces of that many bytes, the last one shorter (``shards``).
    """

    algorithm: str = "sha256"
    shard_size: int | None = DEFAULT_SHARD_SIZE
    digest_size: int | None = None  # None: the algorithm's default
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = GIT_PATHS

    def __post_init__(self) -> None:
        algorithm = canonical_algorithm(self.algorithm)
        object.__setattr__(self, "algorithm", algorithm)
        if self.shard_size is not None and (
            isinstance(self.shard_size, bool) or self.shard_size <= 0
        ):
            raise InputError(
                f"shard size must be a positive number of bytes, not {self.shard_size}"
            )
        size = DIGEST_SIZES[algorithm] if self.digest_size is None else self.digest_size
        allowed = {"sha256": (32, 32), "blake2b": (1, 64), "blake3": (1, 64)}[algorithm]
        if not allowed[0] <= size <= allowed[1]:
            raise InputError(f"digest size {size} is not possible with {algorithm}")
        object.__setattr__(self, "digest_size", size)
        ignores = tuple(sorted({_normalise_ignore(p) for p in self.ignore_paths}))
        object.__setattr__(self, "ignore_paths", ignores)

    @property
    def size(self) -> int:
        assert self.digest_size is not None
        return self.digest_size

    @property
    def method(self) -> Literal["files", "shards"]:
        return "files" if self.shard_size is None else "shards"

    @property
    def resource_algorithm(self) -> str:
        """The ``algorithm`` of each resource, spelled as model_signing spells it."""
        if self.shard_size is None:
            return self.algorithm
        return f"{self.algorithm}-sharded-{self.shard_size}"

    def ranges(self, size: int) -> list[tuple[int, int]]:
        """The byte ranges hashed for a file of ``size`` bytes.

        Per file: one range, also for an empty file.  In shards: none for an empty file (the
        format records no shard for it; the manifest's file list does instead).
        """
        if self.shard_size is None:
            return [(0, size)]
        step = self.shard_size
        return [(start, min(start + step, size)) for start in range(0, size, step)]

    def ignored(self, name: str) -> bool:
        return any(name == p or name.startswith(p + "/") for p in self.ignore_paths)

    def new_hasher(self) -> Any:
        if self.algorithm == "sha256":
            return hashlib.sha256()
        if self.algorithm == "blake2b":
            return hashlib.blake2b(digest_size=self.size)
        return blake3.blake3()

    def finish(self, hasher: Any) -> bytes:
        if self.algorithm == "blake3":
            digest: bytes = hasher.digest(length=self.size)
            return digest
        return bytes(hasher.digest())


@dataclass(frozen=True)
class FileEntry:
    """A regular file of the model: its name in the manifest, where it is, and its size."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class Piece:
    """One unit of hashing work: a whole file, or one shard of it."""

    file: FileEntry
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class _Walk:
    root: Path
    spec: HashSpec
    exclude: set[str]
    files: list[FileEntry] = field(default_factory=list)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)


def _utf8_name(raw: str, where: Path) -> str:
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"file name {os.fsencode(where)!r} is not valid UTF-8: a signature can name only "
            "UTF-8 paths; rename the file"
        ) from None
    return raw


def list_files(root: Path, spec: HashSpec, *, exclude: Iterable[Path] = ()) -> list[FileEntry]:
    """Every regular file of the model at ``root`` that ``spec`` does not ignore.

    Symbolic links are refused unless ``spec.allow_symlinks`` (then they are followed), and
    so is anything that is neither a file nor a folder: a verifier must see exactly the
    bytes a loader would read.  ``exclude`` names files to skip silently (the signature).
    """
    root = Path(root)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise InputError(f"no such file or directory: {root}") from None
    except OSError as exc:
        raise InputError(f"cannot read {root}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        if not spec.allow_symlinks:
            raise InputError(
                f"{root} is a symbolic link: pass the real path, or allow symbolic links"
            )
        st = _stat_target(root, root)
    if stat.S_ISREG(st.st_mode):
        return [FileEntry(SINGLE_FILE, root, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{root} is neither a file nor a directory")
    excluded = set()
    for path in exclude:
        try:
            excluded.add(Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix())
        except ValueError:
            continue
    walk = _Walk(root=root, spec=spec, exclude=excluded)
    walk.seen_dirs.add((st.st_dev, st.st_ino))
    _walk_dir(walk, root, "")
    walk.files.sort(key=lambda f: name_key(f.name))
    return walk.files


def _stat_target(path: Path, root: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError:
        raise InputError(
            f"{path.relative_to(root) if path != root else path} is a broken symbolic link"
        ) from None


def _walk_dir(walk: _Walk, directory: Path, prefix: str) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise InputError(f"cannot list {directory}: {exc.strerror}") from None
    for entry in entries:
        name = _utf8_name(prefix + entry.name, Path(entry.path))
        if walk.spec.ignored(name) or name in walk.exclude:
            continue
        path = Path(entry.path)
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            if not walk.spec.allow_symlinks:
                raise InputError(
                    f"{name} is a symbolic link: a signature covers file contents, so links "
                    "are refused unless symbolic links are allowed (they are then followed)"
                )
            st = _stat_target(path, walk.root)
        if stat.S_ISDIR(st.st_mode):
            ident = (st.st_dev, st.st_ino)
            if ident in walk.seen_dirs:
                raise InputError(f"{name} links back to a folder already hashed (a loop)")
            walk.seen_dirs.add(ident)
            _walk_dir(walk, path, name + "/")
            walk.seen_dirs.discard(ident)
        elif stat.S_ISREG(st.st_mode):
            walk.files.append(FileEntry(name, path, st.st_size))
        else:
            raise InputError(
                f"{name} is not a regular file (a device, socket or pipe): remove it from the "
                "model folder or ignore it"
            )


def name_key(name: str) -> tuple[str, ...]:
    """Order of names in a manifest: by path components, as model_signing sorts them."""
    return tuple(name.split("/"))


def plan(files: Sequence[FileEntry], spec: HashSpec) -> list[Piece]:
    return [Piece(f, start, end) for f in files for start, end in spec.ranges(f.size)]


_local = threading.local()


def _buffer() -> memoryview:
    buf: memoryview | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = memoryview(bytearray(_BUFFER))
        _local.buffer = buf
    return buf


def _open_checked(piece: Piece) -> int:
    try:
        fd = os.open(piece.file.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read {piece.file.name}: {exc.strerror}") from None
    size = os.fstat(fd).st_size
    if size != piece.file.size:
        os.close(fd)
        raise _changed(piece, size)
    return fd


def _changed(piece: Piece, size: int | None = None) -> InputError:
    now = f" (now {size} bytes, was {piece.file.size})" if size is not None else ""
    return InputError(
        f"{piece.file.name} changed while it was being hashed{now}: hash it again once "
        "nothing writes to it"
    )


def hash_piece(piece: Piece, spec: HashSpec, *, threads: int = 1) -> bytes:
    """The digest of one piece; ``threads`` > 1 lets BLAKE3 spread it over several cores."""
    wide = spec.algorithm == "blake3" and threads > 1
    hasher = blake3.blake3(max_threads=threads) if wide else spec.new_hasher()
    fd = _open_checked(piece)  # an empty file too must still exist and be readable
    try:
        if piece.length >= _MAP_MIN:
            # blake3's own threads already read several parts of the range at once.
            _update_mapped(hasher, fd, piece, _BLAKE3_STEP if wide else _MAP_STEP,
                           prefetch=not wide)
        elif piece.length:
            _update_read(hasher, fd, piece)
    except OSError as exc:
        raise InputError(f"cannot read {piece.file.name}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return spec.finish(hasher)


def _update_read(hasher: Any, fd: int, piece: Piece) -> None:
    buf = _buffer()
    offset, end = piece.start, piece.end
    if offset:
        os.lseek(fd, offset, os.SEEK_SET)
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        while offset < end:
            got = stream.readinto(buf[: min(len(buf), end - offset)])
            if not got:
                raise _changed(piece)
            hasher.update(buf[:got])
            offset += got


def _update_mapped(hasher: Any, fd: int, piece: Piece, step: int, *, prefetch: bool) -> None:
    # Map only the piece (from the page boundary below it), so threads hashing shards of
    # one file each map their own part.
    base = piece.start - piece.start % mmap.ALLOCATIONGRANULARITY
    if os.fstat(fd).st_size < piece.end:
        raise _changed(piece, os.fstat(fd).st_size)
    with mmap.mmap(fd, piece.end - base, access=mmap.ACCESS_READ, offset=base) as mapped:
        view = memoryview(mapped)
        try:
            for start in range(piece.start, piece.end, step):
                stop = min(start + step, piece.end)
                if prefetch and _FADVISE is not None and stop < piece.end:
                    # One thread hashing one stream leaves a cold disk mostly idle: ask
                    # for the next windows while this one is hashed (no cost when cached).
                    ahead = min(_PREFETCH * step, piece.end - stop)
                    _FADVISE(fd, stop, ahead, os.POSIX_FADV_WILLNEED)
                hasher.update(view[start - base : stop - base])
        finally:
            view.release()


Progress = Callable[[int], None]


def hash_pieces(
    pieces: Sequence[Piece],
    spec: HashSpec,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> list[bytes]:
    """Digests of ``pieces``, in their order, computed on ``workers`` threads.

    The largest pieces start first so that no core is left with one big file at the end.
    BLAKE3 hashes each large file with all its threads, one file at a time, while the
    small files share the pool.
    """
    count = workers or default_workers()
    digests: list[bytes | None] = [None] * len(pieces)
    order = sorted(range(len(pieces)), key=lambda i: pieces[i].length, reverse=True)
    wide = [
        i for i in order
        if spec.algorithm == "blake3" and count > 1 and pieces[i].length >= _BLAKE3_PARALLEL_MIN
    ]
    wide_set = set(wide)
    narrow = [i for i in order if i not in wide_set]
    if count == 1 and not wide:
        for i in narrow:
            digests[i] = hash_piece(pieces[i], spec)
            if progress:
                progress(pieces[i].length)
        return [d for d in digests if d is not None]

    def run(i: int) -> None:
        digests[i] = hash_piece(pieces[i], spec)
        if progress:
            progress(pieces[i].length)

    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="tsuba-hash") as pool:
        futures = [pool.submit(run, i) for i in narrow]
        for i in wide:
            digests[i] = hash_piece(pieces[i], spec, threads=count)
            if progress:
                progress(pieces[i].length)
        for future in futures:
            future.result()
    out = [d for d in digests if d is not None]
    assert len(out) == len(pieces)
    return out


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "DIGEST_SIZES",
    "GIT_PATHS",
    "SINGLE_FILE",
    "FileEntry",
    "HashSpec",
    "Piece",
    "canonical_algorithm",
    "default_workers",
    "hash_piece",
    "hash_pieces",
    "list_files",
    "name_key",
    "plan",
]
