"""Content sniffing: what a file is, from its bytes, never from its name.

Names lie (a pickle saved as ``config.json`` is still unpickled by whoever asks for it), so
every file and every archive member is judged by what it starts with.
"""

from __future__ import annotations

import json
import struct
from enum import StrEnum

from tsuba.models.scan.pickle import looks_like_pickle
from tsuba.models.scan.view import View


class Format(StrEnum):
    EMPTY = "empty"
    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    ZLIB = "zlib"
    ZSTD = "zstd"
    LZ4 = "lz4"
    SEVEN_ZIP = "7z"
    RAR = "rar"
    NUMPY = "numpy"
    PICKLE = "pickle"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    GGML = "ggml"
    HDF5 = "hdf5"
    PROTOBUF = "protobuf"
    JSON = "json"
    UNKNOWN = "unknown"


_MAGIC: list[tuple[bytes, Format]] = [
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),
    (b"PK\x07\x08", Format.ZIP),
    (b"\x93NUMPY", Format.NUMPY),
    (b"GGUF", Format.GGUF),
    (b"\x89HDF\r\n\x1a\n", Format.HDF5),
    (b"\x1f\x8b", Format.GZIP),
    (b"BZh", Format.BZIP2),
    (b"\xfd7zXZ\x00", Format.XZ),
    (b"\x28\xb5\x2f\xfd", Format.ZSTD),
    (b"\x04\x22\x4d\x18", Format.LZ4),
    (b"7z\xbc\xaf\x27\x1c", Format.SEVEN_ZIP),
    (b"Rar!\x1a\x07", Format.RAR),
]
_GGML_MAGICS = (b"lmgg", b"fmgg", b"tjgg", b"ggml", b"ggmf", b"ggjt")
_ZLIB_HEADERS = (b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda")


def sniff(view: View) -> Format:  # noqa: PLR0911 -- one return per format
    size = len(view)
    if size == 0:
        return Format.EMPTY
    head = view.head(512)
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] in _GGML_MAGICS:
        return Format.GGML
    if size >= 512 and head[257:262] == b"ustar":
        return Format.TAR
    if _looks_like_safetensors(view, head):
        return Format.SAFETENSORS
    if looks_like_pickle(view):
        return Format.PICKLE
    if head[:2] in _ZLIB_HEADERS:
        return Format.ZLIB
    if head[:3] == b"\x5d\x00\x00":
        return Format.LZMA
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") and _is_json(view):
        return Format.JSON
    if _looks_like_protobuf(view):
        return Format.PROTOBUF
    return Format.UNKNOWN


def _looks_like_safetensors(view: View, head: bytes) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return n >= 2 and head[8:9] == b"{"


def _is_json(view: View) -> bool:
    if len(view) > 64 << 20:
        return False
    try:
        json.loads(view.tobytes())
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _looks_like_protobuf(view: View) -> bool:
    from tsuba.models.scan.wire import WireError, fields  # noqa: PLC0415 (cycle)

    first = view.head(1)
    if not first or first[0] & 7 not in (0, 1, 2, 5) or first[0] >> 3 == 0:
        return False
    try:
        count = sum(1 for _ in fields(view))
    except WireError:
        return False
    return count > 0
