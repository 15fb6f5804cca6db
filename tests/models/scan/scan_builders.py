"""Fixture builders: pickles assembled opcode by opcode and archives with chosen defects.

Nothing built here is ever loaded: the tests only hand the bytes to the scanner.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib

P = pickle  # opcode constants: P.GLOBAL, P.REDUCE ...


def su(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return P.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def proto(n: int = 4) -> bytes:
    return P.PROTO + bytes([n])


def global_(module: str, name: str) -> bytes:
    return P.GLOBAL + f"{module}\n{name}\n".encode()


def stack_global(module: str, name: str) -> bytes:
    return su(module) + su(name) + P.STACK_GLOBAL


def call(module: str, name: str, *args: str, via: str = "GLOBAL") -> bytes:
    """``module.name(*args)`` with string arguments, then STOP."""
    head = global_(module, name) if via == "GLOBAL" else stack_global(module, name)
    return proto() + head + P.MARK + b"".join(su(a) for a in args) + P.TUPLE + P.REDUCE + P.STOP


def reduce_call(module: str, name: str, *args: object, protocol: int = 4) -> bytes:
    """``module.name(*args)`` written by the real (pure-Python) pickler through
    ``__reduce__``: its own framing, memo and opcode choice for the protocol.  The module
    need not exist here."""
    buf = io.BytesIO()
    _Pickler(buf, protocol).dump(_Payload(_Target(module, name), args))
    return buf.getvalue()


class _Target:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce_ex__(self, protocol: object) -> str:
        return self.name  # a string: the pickler writes a global reference

    def __call__(self) -> None:  # the pickler only accepts callables as reduce targets
        raise AssertionError("never called")


class _Payload:
    def __init__(self, target: _Target, args: tuple[object, ...]) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.target, self.args


class _Pickler(pickle._Pickler):  # type: ignore[name-defined]
    def save_global(self, obj: object, name: str | None = None) -> None:
        if not isinstance(obj, _Target):
            super().save_global(obj, name)
            return
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(P.STACK_GLOBAL)
        else:
            self.write(P.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)


def zip_bytes(members: dict[str, bytes], *, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def set_flag(data: bytes, name: bytes, flag: int) -> bytes:
    """Set a general-purpose flag bit on ``name`` in both local and central headers."""
    out = bytearray(data)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        while pos >= 0:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if out[name_at : name_at + len(name)] == name:
                (flags,) = struct.unpack_from("<H", out, pos + flag_at)
                struct.pack_into("<H", out, pos + flag_at, flags | flag)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def rename_local(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rename the entry in its local header only (same length): readers disagree."""
    assert len(old) == len(new)
    pos = data.find(b"PK\x03\x04")
    at = data.find(old, pos)
    return data[:at] + new + data[at + len(old) :]


def torch_like_zip(data_pkl: bytes, storages: dict[str, bytes] | None = None,
                   prefix: str = "archive") -> bytes:
    members = {f"{prefix}/data.pkl": data_pkl, f"{prefix}/version": b"3\n",
               f"{prefix}/byteorder": b"little"}
    for key, raw in (storages or {}).items():
        members[f"{prefix}/data/{key}"] = raw
    return zip_bytes(members)


def deflate_bomb(size: int) -> bytes:
    """A zip whose one entry inflates from a few KB to ``size`` bytes."""
    return zip_bytes({"data.pkl": b"\0" * size}, compress=True)


def zlib_bomb(size: int) -> bytes:
    return zlib.compress(b"\0" * size, 9)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number: int, value: bytes | int) -> bytes:
    """One protobuf field: ints as varints, bytes as length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def gguf(kv: dict[str, str | int], tensors: list[tuple[str, list[int], int, int]] | None = None,
         data: bytes = b"", version: int = 3) -> bytes:
    """A GGUF file with string/uint32 metadata and the given tensor infos."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors or []), len(kv))
    for key, value in kv.items():
        if isinstance(value, str):
            out += s(key) + struct.pack("<I", 8) + s(value)
        else:
            out += s(key) + struct.pack("<II", 4, value)
    for name, dims, ttype, offset in tensors or []:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d)
                                                                   for d in dims)
        out += struct.pack("<IQ", ttype, offset)
    pad = -len(out) % 32
    return out + b"\0" * pad + data


def safetensors(header: dict[str, object] | bytes, data: bytes) -> bytes:
    import json

    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def npy(header: str, data: bytes, version: int = 1) -> bytes:
    raw = header.encode("latin-1")
    pad = -(len(raw) + 11) % 64
    raw = raw + b" " * pad + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + data
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(raw)) + raw + data
