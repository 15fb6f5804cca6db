"""GGUF (llama.cpp): metadata sanity and chat templates.

Counts and lengths are checked against what is left of the file before anything is read, so
a header that claims 2**63 entries costs nothing.  Chat templates are Jinja2 and some loaders
rendered them outside a sandbox (CVE-2024-34359): a template that reaches Python internals is
a finding.
"""

from __future__ import annotations

import re
import struct

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
MAX_DIMS = 4
# ggml type -> (block size in elements, bytes per block)
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136),
    24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56),
    30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}
_SSTI = re.compile(
    r"__\w+__|\b(?:popen|subprocess|os\.system|eval|exec|import|getattr|globals|builtins|"
    r"lipsum|cycler|joiner|self\._|mro|subclasses)\b"
)
_FILE_TAGS = re.compile(r"{%-?\s*(?:include|import|from|extends)\b")


class _Reader:
    def __init__(self, view: View) -> None:
        self.view, self.pos = view, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.view):
            raise ValueError(f"truncated at byte {self.pos} (needs {n} more)")
        data = self.view.read(self.pos, n)
        self.pos += n
        return data

    def unpack(self, fmt: str) -> int | float | bool:
        value: int | float | bool = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def count(self, fmt: str, min_item: int) -> int:
        n = int(self.unpack(fmt))
        if n * min_item > len(self.view) - self.pos:
            raise ValueError(f"count {n} at byte {self.pos} exceeds what the file can hold")
        return n

    def string(self, wide: bool) -> str:
        n = self.count("<Q" if wide else "<I", 1)
        return self.take(n).decode("utf-8", "replace")


def scan_gguf(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    r = _Reader(view)
    try:
        r.take(4)
        version = int(r.unpack("<I"))
        if version not in (1, 2, 3):
            ctx.unparseable(location, f"GGUF version {version} is not known", 4)
            return "gguf"
        wide = version >= 2
        n_tensors = r.count("<Q" if wide else "<I", 8 if wide else 4)
        n_kv = r.count("<Q" if wide else "<I", 12)
        meta: dict[str, object] = {}
        for _ in range(n_kv):
            key = r.string(wide)
            vtype = int(r.unpack("<I"))
            meta[key] = _value(r, vtype, wide, 0)
        alignment = meta.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            ctx.unparseable(location, f"general.alignment {alignment!r} is not a power of two")
            alignment = 32
        tensors = []
        for _ in range(n_tensors):
            name = r.string(wide)
            n_dims = int(r.unpack("<I"))
            if n_dims > MAX_DIMS:
                raise ValueError(f"tensor {name!r} has {n_dims} dimensions (max {MAX_DIMS})")
            dims = [int(r.unpack("<Q" if wide else "<I")) for _ in range(n_dims)]
            ttype = int(r.unpack("<I"))
            offset = int(r.unpack("<Q"))
            tensors.append((name, dims, ttype, offset))
    except (ValueError, struct.error) as exc:
        ctx.unparseable(location, f"GGUF header is malformed: {exc}", r.pos)
        return "gguf"
    data_start = -(-r.pos // alignment) * alignment
    data_len = len(view) - data_start
    for name, dims, ttype, offset in tensors:
        elems = 1
        for d in dims:
            elems *= d
        block = GGML_TYPES.get(ttype)
        if block is None:
            ctx.add_once(f"t{ttype}", "gguf.tensor-type", Severity.LOW,
                         f"tensor type {ttype} not known to the scanner; size unchecked", location)
            continue
        nbytes = -(-elems // block[0]) * block[1]
        if offset % alignment or offset + nbytes > data_len:
            ctx.unparseable(location, f"tensor {name!r} at {offset} (+{nbytes} bytes) lies "
                            f"outside the data section of {data_len} bytes or is misaligned")
            break
    _check_templates(ctx, meta, location)
    return "gguf"


def _value(r: _Reader, vtype: int, wide: bool, depth: int) -> object:
    if vtype in _SCALAR:
        return r.unpack(_SCALAR[vtype])
    if vtype == _STRING:
        return r.string(wide)
    if vtype == _ARRAY:
        if depth > 2:
            raise ValueError("arrays nested too deep")
        itype = int(r.unpack("<I"))
        n = r.count("<Q" if wide else "<I", 1)
        if itype in _SCALAR:
            size = struct.calcsize(_SCALAR[itype])
            r.take(n * size)  # numbers are not needed; skip them
            return n
        return [_value(r, itype, wide, depth + 1) for _ in range(n)]
    raise ValueError(f"unknown metadata value type {vtype}")


def _check_templates(ctx: ScanContext, meta: dict[str, object], location: str) -> None:
    for key, value in meta.items():
        if not key.startswith("tokenizer.chat_template") or not isinstance(value, str):
            continue
        hits = sorted(set(_SSTI.findall(value)))
        if hits:
            ctx.add("gguf.chat-template", Severity.CRITICAL,
                    f"chat template {key!r} reaches Python internals ({', '.join(hits[:5])}); "
                    "a loader rendering it outside a Jinja2 sandbox runs code "
                    "(CVE-2024-34359)", location, key=key)
        elif _FILE_TAGS.search(value):
            ctx.add("gguf.chat-template", Severity.HIGH,
                    f"chat template {key!r} includes or imports other templates (file access)",
                    location, key=key)
