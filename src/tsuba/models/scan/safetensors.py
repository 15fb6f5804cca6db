"""safetensors: the header is the whole attack surface, so it is validated as strictly as the
reference loader does (size limit, JSON, dtypes, shapes, offsets that tile the data exactly)
without reading any tensor data."""

from __future__ import annotations

import json
import math
import struct

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

MAX_HEADER = 100_000_000  # the reference implementation's limit
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64,
    "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def scan_safetensors(ctx: ScanContext, view: View, location: str, depth: int) -> str:  # noqa: PLR0911, PLR0912 -- one check per header rule
    size = len(view)
    if size < 8:
        ctx.unparseable(location, "safetensors file shorter than its 8-byte header length")
        return "safetensors"
    (n,) = struct.unpack("<Q", view.read(0, 8))
    if n > MAX_HEADER:
        ctx.unparseable(location, f"safetensors header of {n} bytes exceeds the loader's limit")
        return "safetensors"
    if 8 + n > size:
        ctx.unparseable(location, f"safetensors header of {n} bytes runs past the end")
        return "safetensors"
    raw = view.read(8, n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        ctx.unparseable(location, f"safetensors header is not valid JSON: {exc}", 8)
        return "safetensors"
    if not isinstance(header, dict):
        ctx.unparseable(location, "safetensors header is not a JSON object", 8)
        return "safetensors"
    data_len = size - 8 - n
    meta = header.pop("__metadata__", None)
    if meta is not None and (not isinstance(meta, dict)
                             or not all(isinstance(v, str) for v in meta.values())):
        ctx.unparseable(location, "__metadata__ must map strings to strings", 8)
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        problem = _tensor_problem(info)
        if problem:
            ctx.unparseable(location, f"tensor {name!r}: {problem}", 8)
            return "safetensors"
        assert isinstance(info, dict)
        begin, end = info["data_offsets"]
        bits = DTYPE_BITS[info["dtype"]] * math.prod(info["shape"])
        if bits % 8 or end - begin != bits // 8:
            ctx.unparseable(location, f"tensor {name!r}: offsets hold {end - begin} bytes, "
                            f"dtype and shape need {bits / 8:g}", 8)
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            what = "overlaps the previous tensor" if begin < cursor else "leaves a gap"
            ctx.unparseable(location, f"tensor {name!r} {what} (offset {begin}, expected "
                            f"{cursor}); the reference loader rejects the file", 8)
            return "safetensors"
        cursor = end
    if cursor != data_len:
        ctx.unparseable(location, f"tensors cover {cursor} bytes but the data section holds "
                        f"{data_len}; the reference loader rejects the file", 8 + n)
    if meta and any(len(v) > 1 << 20 for v in meta.values()):
        ctx.add("safetensors.metadata", Severity.LOW, "metadata value larger than 1 MiB",
                location, 8)
    return "safetensors"


def _tensor_problem(info: object) -> str:
    if not isinstance(info, dict):
        return "entry is not an object"
    if set(info) - {"dtype", "shape", "data_offsets"} or len(info) != 3:
        return "entry must have exactly dtype, shape and data_offsets"
    if info["dtype"] not in DTYPE_BITS:
        return f"unknown dtype {info['dtype']!r}"
    shape = info["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return "shape must be a list of non-negative integers"
    offsets = info["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(
        isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets
    ) and offsets[0] <= offsets[1]):
        return "data_offsets must be two ordered non-negative integers"
    return ""
