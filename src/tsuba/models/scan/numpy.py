"""numpy ``.npy`` files (and the members of ``.npz``): header, data size, object arrays.

An object array is stored as a pickle after the header; ``numpy.load(allow_pickle=True)``
unpickles it, so it is scanned like any pickle.  The header is a Python literal that numpy
reads with ``ast.literal_eval``; tsuba reads it the same way (no code runs) within numpy's
own header-size limit.
"""

from __future__ import annotations

import ast
import math
import re
import struct

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle import report_malformed, walk
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

MAX_HEADER = 10_000  # numpy's default max_header_size
_TYPESTR = re.compile(r"^[<>|=]?([biufcmMOSUVa?])(\d*)(\[\w+\])?$")
_DEFAULT_SIZE = {"b": 1, "?": 1, "O": 8, "M": 8, "m": 8}


def scan_npy(ctx: ScanContext, view: View, location: str, depth: int) -> str:  # noqa: PLR0911, PLR0912 -- one check per header field
    head = view.head(12)
    if len(head) < 10:
        ctx.unparseable(location, "numpy file truncated inside its header")
        return "numpy"
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", head[8:10])
        start = 10
    elif major in (2, 3):
        if len(head) < 12:
            ctx.unparseable(location, "numpy file truncated inside its header")
            return "numpy"
        (hlen,) = struct.unpack("<I", head[8:12])
        start = 12
    else:
        ctx.unparseable(location, f"numpy format version {major} is not known")
        return "numpy"
    if hlen > MAX_HEADER:
        ctx.unparseable(location, f"numpy header of {hlen} bytes exceeds numpy's limit "
                        f"({MAX_HEADER}); numpy.load refuses it by default")
        return "numpy"
    raw = view.read(start, hlen)
    if len(raw) < hlen:
        ctx.unparseable(location, "numpy file truncated inside its header")
        return "numpy"
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin-1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        ctx.unparseable(location, "numpy header is not a Python literal", start)
        return "numpy"
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        ctx.unparseable(location, "numpy header lacks descr, fortran_order or shape", start)
        return "numpy"
    shape, descr = header["shape"], header["descr"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        ctx.unparseable(location, "numpy header shape is not a tuple of sizes", start)
        return "numpy"
    data_at = start + hlen
    itemsize, has_object = _descr_info(descr)
    if has_object:
        ctx.add("numpy.object-array", Severity.INFO,
                "object array: numpy.load(allow_pickle=True) unpickles it (scanned below)",
                location)
        result = walk(view.buf, view.start + data_at, view.end, ctx, location, depth=depth + 1,
                      base=view.start)
        if not result.ok:
            report_malformed(ctx, result, location, view.start)
        return "numpy"
    if itemsize is None:
        ctx.add("numpy.descr", Severity.LOW, f"dtype {descr!r} not sized by the scanner; data "
                "length unchecked", location)
        return "numpy"
    need = math.prod(shape) * itemsize
    have = len(view) - data_at
    if have < need:
        ctx.unparseable(location, f"numpy data truncated: {have} bytes of {need}", data_at)
    elif have > need:
        ctx.add("numpy.trailing-data", Severity.LOW, f"{have - need} bytes after the array data",
                location, data_at + need)
    return "numpy"


def _descr_info(descr: object) -> tuple[int | None, bool]:  # noqa: PLR0911 -- one return per dtype form
    if isinstance(descr, str):
        m = _TYPESTR.match(descr)
        if not m:
            return None, False
        kind, size = m.group(1), m.group(2)
        if kind == "O":
            return 8, True
        n = int(size) if size else _DEFAULT_SIZE.get(kind)
        if n is None:
            return None, False
        return (n * 4 if kind == "U" else n), False
    if isinstance(descr, list):
        total, has_object = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                return None, False
            size, obj = _descr_info(field[1])
            if size is None:
                return None, obj
            count = math.prod(field[2]) if len(field) > 2 and isinstance(field[2], tuple) else 1
            total += size * count
            has_object = has_object or obj
        return total, has_object
    return None, False
