"""joblib files: a pickle stream with raw array bytes written between its opcodes.

joblib's unpickler, on BUILD of a ``NumpyArrayWrapper``, reads the array straight from the
stream (after an alignment pad) or, for object arrays, unpickles a further pickle there.
A scanner that does not know this either stops at the array bytes or misreads them as
opcodes; here the walk jumps over them exactly as joblib reads them, and object arrays get
their nested pickle scanned.
"""

from __future__ import annotations

import math
import re

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle import BuildHook, Call, DictV, Global, Malformed, walk
from tsuba.models.scan.view import RawBuffer

_WRAPPERS = {("joblib.numpy_pickle", "NumpyArrayWrapper"),
             ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper")}
_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")


def array_hook(ctx: ScanContext, buf: RawBuffer, end: int, location: str, depth: int,  # noqa: PLR0917 -- the walk's own coordinates
               base: int) -> BuildHook:
    def hook(obj: Call, state: object, pos: int) -> int | None:
        f = obj.func
        if not (isinstance(f, Global) and (f.module, f.name) in _WRAPPERS):
            return None
        if not isinstance(state, DictV):
            raise Malformed("joblib array wrapper without a state dict", pos)
        itemsize, has_object = _dtype_info(state.get("dtype"), pos)
        if has_object:
            nested = walk(buf, pos, end, ctx, location, depth=depth + 1, base=base,
                          on_build=hook)
            if not nested.ok:
                raise Malformed(f"joblib object array pickle: {nested.error}",
                                nested.error_offset or pos)
            return nested.end
        if state.get("numpy_array_alignment_bytes") is not None:
            if pos >= end:
                raise Malformed("joblib array padding truncated", pos)
            pos += 1 + buf[pos]
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Malformed("joblib array shape is not a tuple of sizes", pos)
        return pos + math.prod(shape) * itemsize

    return hook


def _dtype_info(dtype: object, pos: int) -> tuple[int, bool]:
    if not (isinstance(dtype, Call) and isinstance(dtype.func, Global)
            and dtype.func.name == "dtype" and isinstance(dtype.args, tuple) and dtype.args
            and isinstance(dtype.args[0], str)):
        raise Malformed("joblib array dtype cannot be read", pos)
    code = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    if code.startswith("O") or flags & 1:
        return 0, True
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    if elsize > 0:
        return elsize, False
    m = _TYPESTR.match(code)
    if not m or not m.group(2):
        raise Malformed(f"joblib array dtype {code!r} has no size", pos)
    return int(m.group(2)), False
