"""Static analysis of pickle streams: a simulated unpickler that never imports or calls.

The simulation follows CPython's C unpickler closely (stack with marks and fence, memo
indices, argument checks), because a scanner that reads a stream differently from the loader
can be bypassed: a string placed in the memo and fetched back for STACK_GLOBAL, a MARK that
hides an operand, a stream that runs a payload and then breaks.  Every import is judged by the
allow-list in :mod:`tsuba.models.scan.pickle_globals`, whichever opcode reaches it; calls of
values that are not allow-listed imports are findings; anything the loader would reject ends
the walk with a finding after reporting what ran before it.

Large byte payloads (array data) are skipped by length, never read.
"""

from __future__ import annotations

import _compat_pickle
import codecs
from collections.abc import Callable
from dataclasses import dataclass, field

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle_globals import Verdict, classify, is_class_name
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import RawBuffer, View

HIGHEST_PROTOCOL = 5
_SMALL = 256  # byte strings up to this size are copied; larger ones stay references
_MAX_TEXT = 1 << 20  # longer text constants are not decoded (they cannot be import names)
_MAX_STACK = 2_000_000


class Mark:
    __slots__ = ()


class Opaque:
    """A value the simulation does not model (result of an unknown operation)."""

    __slots__ = ()


OPAQUE = Opaque()


class Global:
    __slots__ = ("module", "name", "verdict")

    def __init__(self, module: str, name: str, verdict: Verdict) -> None:
        self.module, self.name, self.verdict = module, name, verdict

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


class Call:
    """An object built by REDUCE/NEWOBJ/INST/OBJ from ``func`` and ``args``."""

    __slots__ = ("args", "func", "state")

    def __init__(self, func: object, args: object) -> None:
        self.func, self.args = func, args
        self.state: object = None


class Persistent:
    __slots__ = ("pid",)

    def __init__(self, pid: object) -> None:
        self.pid = pid


class BytesRef:
    """Bytes left in the file: position and length only."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length = offset, length


class ListV:
    __slots__ = ("dropped", "items")

    def __init__(self, items: list[object] | None = None) -> None:
        self.items: list[object] = items if items is not None else []
        self.dropped = 0


class DictV:
    __slots__ = ("dropped", "items")

    def __init__(self) -> None:
        self.items: dict[object, object] = {}
        self.dropped = 0

    def get(self, key: str) -> object:
        return self.items.get(key)


class SetV:
    __slots__ = ("items",)

    def __init__(self, items: list[object]) -> None:
        self.items = items


class Malformed(Exception):
    """The loader would stop here with an error."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


# Called on BUILD; returns the position to continue from when the object reads raw data
# that follows in the stream (joblib arrays), else None.
BuildHook = Callable[[Call, object, int], int | None]

# Allowed callables that call one of their arguments: index of that argument.
_APPLIES_ARGUMENT: dict[tuple[str, str], int] = {
    ("torch._tensor", "_rebuild_from_type_v2"): 0,
    ("collections", "defaultdict"): 0,
}


@dataclass
class PickleResult:
    start: int
    end: int  # position after STOP, or where the walk stopped
    ok: bool
    error: str = ""
    error_offset: int | None = None
    protocol: int = 0
    value: object = None
    imports: list[Global] = field(default_factory=list)
    persistent_ids: list[object] = field(default_factory=list)
    opcodes: int = 0


def looks_like_pickle(view: View) -> bool:
    """Whether the view starts like a pickle stream the loader would run: a protocol header
    followed by a valid opcode, or protocol 0/1 opcodes that import something or walk
    cleanly for a while.  A stream that fails at its first opcode runs nothing."""
    head = view.head(2)
    if not head or head[0] not in b"\x80(c]}lNIJKLFSVXUTGBC)i\x88\x89":
        return False
    if head[0] == 0x80 and (len(head) < 2 or head[1] > HIGHEST_PROTOCOL):
        return False
    probe = walk(view.buf, view.start, view.end, None, "", max_ops=64)
    if probe.ok or probe.imports or (probe.opcodes >= 64 and not probe.error):
        return True
    return head[0] == 0x80 and probe.opcodes >= 2


def walk(
    buf: RawBuffer,
    start: int,
    end: int,
    ctx: ScanContext | None,
    location: str,
    *,
    depth: int = 0,
    on_build: BuildHook | None = None,
    max_ops: int | None = None,
    persistent_ok: bool = False,
    base: int | None = None,
) -> PickleResult:
    """Simulate one pickle from ``start`` to its STOP.  Findings go to ``ctx`` (None: probe
    only), with offsets counted from ``base`` (default ``start``).  The walk stops at the
    first place the loader would fail and says so."""
    sim = _Simulator(buf, start, end, ctx, location, depth, on_build, persistent_ok,
                     start if base is None else base)
    return sim.run(max_ops)


def scan_pickle_stream(ctx: ScanContext, view: View, location: str, depth: int, *,
                       on_build: BuildHook | None = None, start: int | None = None,
                       count: int = 0) -> str:
    """Scan pickles back to back from ``start`` (a plain ``pickle.dump``, or several dumps
    into one file: a second ``load`` call runs the second one)."""
    pos = view.start if start is None else start
    while pos < view.end:
        if count:
            rest = View(view.buf, pos, view.end)
            if not looks_like_pickle(rest):
                ctx.add(
                    "pickle.trailing-data",
                    Severity.LOW,
                    f"{len(rest)} bytes after the end of pickle {count} are not a pickle",
                    location,
                    pos - view.start,
                )
                break
        result = walk(view.buf, pos, view.end, ctx, location, depth=depth, base=view.start,
                      on_build=on_build)
        count += 1
        if not result.ok:
            report_malformed(ctx, result, location, view.start)
            return "pickle"
        pos = result.end
    return "pickle"


def report_malformed(ctx: ScanContext, result: PickleResult, location: str, base: int) -> None:
    offset = (result.error_offset if result.error_offset is not None else result.end) - base
    ctx.add(
        "pickle.malformed",
        Severity.MEDIUM,
        f"{result.error}; the loader stops here with an error, after running every opcode "
        "before it",
        location,
        offset,
    )


class _Simulator:
    def __init__(  # noqa: PLR0917 -- the walk's coordinates and options
        self,
        buf: RawBuffer,
        start: int,
        end: int,
        ctx: ScanContext | None,
        location: str,
        depth: int,
        on_build: BuildHook | None,
        persistent_ok: bool,
        base: int,
    ) -> None:
        self.buf, self.start, self.end, self.base = buf, start, end, base
        self.ctx, self.location, self.depth = ctx, location, depth
        self.on_build = on_build
        self.persistent_ok = persistent_ok
        self.result = PickleResult(start=start, end=start, ok=False)
        self.max_items = ctx.limits.max_container_items if ctx else 1000
        self.nested: list[tuple[int, int]] = []

    # -- findings ---------------------------------------------------------------------------

    def _finding(self, key: str, rule: str, severity: Severity, message: str, offset: int,
                 **detail: str) -> None:
        if self.ctx is not None:
            self.ctx.add_once(key, rule, severity, message, self.location,
                              offset - self.base, **detail)

    def _import(self, module: str, name: str, offset: int, opname: str) -> Global:
        verdict, why = classify(module, name)
        if self.result.protocol < 3:  # the loader's fix_imports maps Python 2 names
            mapped = _compat_pickle.NAME_MAPPING.get((module, name))
            if mapped is None and module in _compat_pickle.IMPORT_MAPPING:
                mapped = (_compat_pickle.IMPORT_MAPPING[module], name)
            if mapped is not None and mapped != (module, name):
                if verdict is not Verdict.DANGEROUS:
                    verdict, why = classify(*mapped)
                module, name = mapped
        g = Global(module, name, verdict)
        self.result.imports.append(g)
        full = f"{module}.{name}"
        if verdict is Verdict.DANGEROUS:
            self._finding(full, "pickle.dangerous-import", Severity.CRITICAL,
                          f"imports {full} ({why})", offset, module=module, name=name,
                          opcode=opname)
        elif verdict is Verdict.UNKNOWN:
            self._finding(full, "pickle.unknown-import", Severity.MEDIUM,
                          f"imports {full}, which is not on the allow-list ({why})", offset,
                          module=module, name=name, opcode=opname)
        return g

    def _called(self, func: object, args: object, offset: int, opname: str) -> Call:
        """Judge a call of ``func`` (REDUCE, NEWOBJ, INST, OBJ) and return its result."""
        target = self._resolve(func)
        if isinstance(target, Global):
            if target.verdict is Verdict.UNKNOWN and not is_class_name(target.name):
                self._finding(target.qualname, "pickle.unknown-call", Severity.HIGH,
                              f"calls {target.qualname}, a function outside the allow-list",
                              offset, module=target.module, name=target.name, opcode=opname)
            index = _APPLIES_ARGUMENT.get((target.module, target.name))
            if index is not None and isinstance(args, tuple) and len(args) > index:
                inner = self._resolve(args[index])
                if inner is not None and not isinstance(inner, Global | Opaque):
                    self._finding(f"apply@{offset}", "pickle.computed-call", Severity.HIGH,
                                  f"{target.qualname} is handed a computed value to call",
                                  offset, opcode=opname)
        elif isinstance(target, Call | Persistent | Opaque):
            what = {Call: "the result of another call", Persistent: "a persistent-load result",
                    Opaque: "a value the scanner cannot resolve"}[type(target)]
            self._finding(f"call@{offset}", "pickle.computed-call", Severity.HIGH,
                          f"{opname} calls {what}, not an allow-listed import", offset,
                          opcode=opname)
        else:
            raise Malformed(f"{opname} on a value that is not callable "
                            f"({type(target).__name__})", offset)
        return Call(target, args)

    def _resolve(self, value: object) -> object:
        """A persistent id of the legacy ``('module', cls, ...)`` kind stands for its class."""
        if isinstance(value, Persistent):
            pid = value.pid
            if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and \
                    isinstance(pid[1], Global):
                return pid[1]
        return value

    # -- the loop ---------------------------------------------------------------------------

    def run(self, max_ops: int | None) -> PickleResult:
        res = self.result
        try:
            self._loop(max_ops)
            res.ok = True
        except Malformed as exc:
            res.ok = False
            res.error = str(exc)
            res.error_offset = exc.offset
        except _ProbeDone:
            res.ok = False
        if res.ok and self.ctx is not None:
            self._scan_nested()
        return res

    def _scan_nested(self) -> None:
        """Byte constants that are themselves pickles: scan them, keep their findings only
        when they parse (array data that happens to start like a pickle is not a finding)."""
        ctx = self.ctx
        assert ctx is not None
        for pos, length in self.nested[:64]:
            probe = ScanContext(ctx.path, ctx.limits)
            sub = walk(self.buf, pos, pos + length, probe,
                       f"{self.location}!bytes@{pos - self.base}", depth=self.depth + 1)
            if sub.ok:
                ctx.findings.extend(probe.findings)

    def _loop(self, max_ops: int | None) -> None:  # noqa: PLR0912, PLR0915
        buf, end, res = self.buf, self.end, self.result
        stack: list[object] = []
        marks: list[int] = []
        memo: dict[int, object] = {}
        fence = 0
        pos = self.start
        max_items = self.max_items
        ops = 0

        def pop(at: int) -> object:
            if len(stack) <= fence:
                raise Malformed("unpickling stack underflow", at)
            return stack.pop()

        def top(at: int) -> object:
            if len(stack) <= fence:
                raise Malformed("unpickling stack underflow", at)
            return stack[-1]

        def pop_mark(at: int) -> list[object]:
            nonlocal fence
            if not marks:
                raise Malformed("could not find MARK", at)
            k = marks.pop()
            fence = marks[-1] if marks else 0
            items = stack[k:]
            del stack[k:]
            return items

        def need(n: int, at: int) -> None:
            if pos + n > end:
                raise Malformed("pickle data was truncated", at)

        def line(at: int) -> bytes:
            nonlocal pos
            nl = buf.find(b"\n", pos, end)
            if nl < 0:
                raise Malformed("pickle data was truncated (no end of line)", at)
            raw = bytes(buf[pos:nl])
            pos = nl + 1
            return raw

        def uint(n: int) -> int:
            nonlocal pos
            need(n, pos - 1)
            v = int.from_bytes(buf[pos : pos + n], "little")
            pos += n
            return v

        def text(raw: bytes, at: int) -> str:
            try:
                return raw.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise Malformed(f"text is not valid UTF-8 ({exc.reason})", at) from None

        def push_bytes(n: int, at: int) -> None:
            nonlocal pos
            if pos + n > end:
                raise Malformed("pickle data was truncated inside a bytes constant", at)
            if n <= _SMALL:
                stack.append(bytes(buf[pos : pos + n]))
            else:
                stack.append(BytesRef(pos, n))
                if n >= 4 and self.ctx is not None and n <= self.ctx.limits.max_nested_pickle \
                        and buf[pos] == 0x80 and buf[pos + 1] <= HIGHEST_PROTOCOL:
                    self.nested.append((pos, n))
            pos += n

        def add_to(target: object, values: list[object], at: int, opname: str) -> None:
            if isinstance(target, ListV):
                room = max_items - len(target.items)
                target.items.extend(values[:room] if room < len(values) else values)
                target.dropped += max(0, len(values) - room)
            elif isinstance(target, Global):
                self._finding(f"container@{at}", "pickle.build-on-global", Severity.HIGH,
                              f"{opname} calls a method of the imported {target.qualname}", at,
                              opcode=opname)
            elif isinstance(target, str | bytes | int | float | tuple | BytesRef | DictV |
                            SetV) or target is None:
                raise Malformed(f"{opname} on a {type(target).__name__}", at)

        def set_items(target: object, items: list[object], at: int, opname: str) -> None:
            if len(items) % 2:
                raise Malformed(f"odd number of items for {opname}", at)
            if isinstance(target, DictV):
                d = target.items
                for i in range(0, len(items), 2):
                    key = items[i]
                    if len(d) < max_items:
                        try:
                            d[key] = items[i + 1]
                        except TypeError:  # unhashable in the loader too
                            raise Malformed(f"{opname} with an unhashable key", at) from None
                    else:
                        target.dropped += 1
            elif isinstance(target, Global):
                self._finding(f"container@{at}", "pickle.build-on-global", Severity.HIGH,
                              f"{opname} sets items on the imported {target.qualname}", at,
                              opcode=opname)
            elif isinstance(target, str | bytes | int | float | tuple | BytesRef | ListV |
                            SetV) or target is None:
                raise Malformed(f"{opname} on a {type(target).__name__}", at)

        while True:
            if pos >= end:
                raise Malformed("pickle data ends before STOP", pos)
            at = pos
            op = buf[pos]
            pos += 1
            res.opcodes = ops
            ops += 1
            if max_ops is not None and ops > max_ops:
                raise _ProbeDone
            if len(stack) > _MAX_STACK:
                raise Malformed("stack grows beyond what the scanner simulates", at)
            # Ordered roughly by frequency in model files.
            if op == 0x71:  # BINPUT
                idx = uint(1)
                memo[idx] = top(at)
            elif op == 0x68:  # BINGET
                idx = uint(1)
                if idx not in memo:
                    raise Malformed(f"memo value not found at index {idx}", at)
                stack.append(memo[idx])
            elif op == 0x58:  # BINUNICODE
                n = uint(4)
                need(n, at)
                if n <= _MAX_TEXT:
                    stack.append(text(bytes(buf[pos : pos + n]), at))
                else:
                    stack.append(OPAQUE)
                pos += n
            elif op == 0x8C:  # SHORT_BINUNICODE
                n = uint(1)
                need(n, at)
                stack.append(text(bytes(buf[pos : pos + n]), at))
                pos += n
            elif op == 0x94:  # MEMOIZE
                memo[len(memo)] = top(at)
            elif op == 0x4B:  # BININT1
                stack.append(uint(1))
            elif op == 0x4D:  # BININT2
                stack.append(uint(2))
            elif op == 0x4A:  # BININT
                need(4, at)
                stack.append(int.from_bytes(buf[pos : pos + 4], "little", signed=True))
                pos += 4
            elif op == 0x28:  # MARK
                marks.append(len(stack))
                fence = len(stack)
            elif op == 0x74:  # TUPLE
                stack.append(tuple(pop_mark(at)))
            elif op == 0x29:  # EMPTY_TUPLE
                stack.append(())
            elif op == 0x85:  # TUPLE1
                stack.append((pop(at),))
            elif op == 0x86:  # TUPLE2
                b = pop(at)
                a = pop(at)
                stack.append((a, b))
            elif op == 0x87:  # TUPLE3
                c = pop(at)
                b = pop(at)
                a = pop(at)
                stack.append((a, b, c))
            elif op == 0x52:  # REDUCE
                args = pop(at)
                func = pop(at)
                if not isinstance(args, tuple | Opaque):
                    raise Malformed("REDUCE arguments are not a tuple", at)
                stack.append(self._called(func, args, at, "REDUCE"))
            elif op == 0x81:  # NEWOBJ
                args = pop(at)
                cls = pop(at)
                if not isinstance(args, tuple | Opaque):
                    raise Malformed("NEWOBJ arguments are not a tuple", at)
                stack.append(self._newobj(cls, args, at, "NEWOBJ"))
            elif op == 0x92:  # NEWOBJ_EX
                kwargs = pop(at)
                args = pop(at)
                cls = pop(at)
                if not isinstance(args, tuple | Opaque) or not isinstance(
                    kwargs, DictV | Opaque
                ):
                    raise Malformed("NEWOBJ_EX arguments are not a tuple and a dict", at)
                stack.append(self._newobj(cls, args, at, "NEWOBJ_EX"))
            elif op == 0x62:  # BUILD
                state = pop(at)
                inst = top(at)
                target = self._resolve(inst)
                if isinstance(target, Global):
                    self._finding(f"build@{at}", "pickle.build-on-global", Severity.HIGH,
                                  f"BUILD sets state on the imported {target.qualname} "
                                  "(rewrites a module or class)", at, opcode="BUILD")
                elif isinstance(target, Call):
                    target.state = state
                    if self.on_build is not None:
                        jump = self.on_build(target, state, pos)
                        if jump is not None:
                            if jump > end:
                                raise Malformed("data after BUILD runs past the end", at)
                            pos = jump
                elif target is None or isinstance(target, str | bytes | int | float | tuple):
                    raise Malformed(f"BUILD on a {type(target).__name__}", at)
            elif op == 0x88:  # NEWTRUE
                stack.append(True)
            elif op == 0x89:  # NEWFALSE
                stack.append(False)
            elif op == 0x4E:  # NONE
                stack.append(None)
            elif op == 0x7D:  # EMPTY_DICT
                stack.append(DictV())
            elif op == 0x5D:  # EMPTY_LIST
                stack.append(ListV())
            elif op == 0x73:  # SETITEM
                value = pop(at)
                key = pop(at)
                set_items(top(at), [key, value], at, "SETITEM")
            elif op == 0x75:  # SETITEMS
                items = pop_mark(at)
                set_items(top(at), items, at, "SETITEMS")
            elif op == 0x61:  # APPEND
                value = pop(at)
                add_to(top(at), [value], at, "APPEND")
            elif op == 0x65:  # APPENDS
                items = pop_mark(at)
                add_to(top(at), items, at, "APPENDS")
            elif op == 0x51:  # BINPERSID
                pid = pop(at)
                stack.append(self._persistent(pid, at))
            elif op == 0x47:  # BINFLOAT
                need(8, at)
                pos += 8
                stack.append(0.0)
            elif op == 0x43:  # SHORT_BINBYTES
                push_bytes(uint(1), at)
            elif op == 0x42:  # BINBYTES
                push_bytes(uint(4), at)
            elif op in (0x8E, 0x96):  # BINBYTES8, BYTEARRAY8
                push_bytes(uint(8), at)
            elif op == 0x8D:  # BINUNICODE8
                n = uint(8)
                need(n, at)
                stack.append(text(bytes(buf[pos : pos + n]), at) if n <= _MAX_TEXT else OPAQUE)
                pos += n
            elif op == 0x95:  # FRAME
                n = uint(8)
                if pos + n > end:
                    raise Malformed("FRAME runs past the end of the data", at)
            elif op == 0x93:  # STACK_GLOBAL
                name = pop(at)
                module = pop(at)
                if isinstance(module, str) and isinstance(name, str):
                    stack.append(self._import(module, name, at, "STACK_GLOBAL"))
                elif isinstance(module, Opaque | Call | Persistent) or isinstance(
                    name, Opaque | Call | Persistent
                ):
                    self._finding(f"sg@{at}", "pickle.unresolved-import", Severity.HIGH,
                                  "STACK_GLOBAL imports a name computed at load time", at,
                                  opcode="STACK_GLOBAL")
                    stack.append(OPAQUE)
                else:
                    raise Malformed("STACK_GLOBAL requires str operands", at)
            elif op == 0x63:  # GLOBAL
                module_s = text(line(at), at)
                name_s = text(line(at), at)
                stack.append(self._import(module_s, name_s, at, "GLOBAL"))
            elif op == 0x69:  # INST
                module_s = text(line(at), at)
                name_s = text(line(at), at)
                cls = self._import(module_s, name_s, at, "INST")
                args = tuple(pop_mark(at))
                stack.append(self._called(cls, args, at, "INST"))
            elif op == 0x6F:  # OBJ
                items = pop_mark(at)
                if not items:
                    raise Malformed("OBJ without a class", at)
                stack.append(self._called(items[0], tuple(items[1:]), at, "OBJ"))
            elif op == 0x80:  # PROTO
                proto = uint(1)
                if proto > HIGHEST_PROTOCOL:
                    raise Malformed(f"unsupported pickle protocol: {proto}", at)
                res.protocol = proto
            elif op == 0x2E:  # STOP
                if len(stack) <= fence:
                    raise Malformed("STOP with an empty stack", at)
                res.value = stack.pop()
                res.end = pos
                res.opcodes = ops
                return
            elif op == 0x30:  # POP
                if marks and marks[-1] == len(stack):
                    marks.pop()
                    fence = marks[-1] if marks else 0
                else:
                    pop(at)
            elif op == 0x31:  # POP_MARK
                pop_mark(at)
            elif op == 0x32:  # DUP
                stack.append(top(at))
            elif op == 0x70:  # PUT
                raw = line(at)
                try:
                    idx = int(raw)
                except ValueError:
                    raise Malformed("PUT index is not a number", at) from None
                if idx < 0:
                    raise Malformed("negative PUT argument", at)
                memo[idx] = top(at)
            elif op == 0x72:  # LONG_BINPUT
                idx = uint(4)
                memo[idx] = top(at)
            elif op == 0x67:  # GET
                raw = line(at)
                try:
                    idx = int(raw)
                except ValueError:
                    raise Malformed("GET index is not a number", at) from None
                if idx not in memo:
                    raise Malformed(f"memo value not found at index {idx}", at)
                stack.append(memo[idx])
            elif op == 0x6A:  # LONG_BINGET
                idx = uint(4)
                if idx not in memo:
                    raise Malformed(f"memo value not found at index {idx}", at)
                stack.append(memo[idx])
            elif op == 0x49:  # INT
                raw = line(at)
                if raw in (b"00", b"01"):
                    stack.append(raw == b"01")
                else:
                    try:
                        stack.append(int(raw, 0))
                    except ValueError:
                        try:
                            stack.append(int(raw))
                        except ValueError:
                            raise Malformed("INT argument is not a number", at) from None
            elif op == 0x4C:  # LONG
                raw = line(at)
                try:
                    stack.append(int(raw[:-1] if raw.endswith(b"L") else raw))
                except ValueError:
                    raise Malformed("LONG argument is not a number", at) from None
            elif op == 0x46:  # FLOAT
                raw = line(at)
                try:
                    stack.append(float(raw))
                except ValueError:
                    raise Malformed("FLOAT argument is not a number", at) from None
            elif op == 0x8A:  # LONG1
                n = uint(1)
                need(n, at)
                stack.append(int.from_bytes(buf[pos : pos + n], "little", signed=True))
                pos += n
            elif op == 0x8B:  # LONG4
                need(4, at)
                n = int.from_bytes(buf[pos : pos + 4], "little", signed=True)
                pos += 4
                if n < 0:
                    raise Malformed("LONG pickle has negative byte count", at)
                need(n, at)
                stack.append(int.from_bytes(buf[pos : pos + n], "little", signed=True)
                             if n <= 4096 else OPAQUE)
                pos += n
            elif op == 0x53:  # STRING
                raw = line(at)
                if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                    raise Malformed("the STRING opcode argument must be quoted", at)
                try:
                    value_b = codecs.escape_decode(raw[1:-1])[0]
                except ValueError:
                    raise Malformed("bad escape in STRING", at) from None
                stack.append(value_b.decode("latin-1"))
            elif op == 0x54:  # BINSTRING
                need(4, at)
                n = int.from_bytes(buf[pos : pos + 4], "little", signed=True)
                pos += 4
                if n < 0:
                    raise Malformed("BINSTRING pickle has negative byte count", at)
                need(n, at)
                stack.append(bytes(buf[pos : pos + n]).decode("latin-1") if n <= _MAX_TEXT
                             else OPAQUE)
                pos += n
            elif op == 0x55:  # SHORT_BINSTRING
                n = uint(1)
                need(n, at)
                stack.append(bytes(buf[pos : pos + n]).decode("latin-1"))
                pos += n
            elif op == 0x56:  # UNICODE
                raw = line(at)
                try:
                    stack.append(raw.decode("raw-unicode-escape"))
                except UnicodeDecodeError:
                    raise Malformed("bad UNICODE argument", at) from None
            elif op == 0x64:  # DICT
                items = pop_mark(at)
                d = DictV()
                set_items(d, items, at, "DICT")
                stack.append(d)
            elif op == 0x6C:  # LIST
                stack.append(ListV(pop_mark(at)[:max_items]))
            elif op == 0x8F:  # EMPTY_SET
                stack.append(SetV([]))
            elif op == 0x90:  # ADDITEMS
                items = pop_mark(at)
                target = top(at)
                if isinstance(target, SetV):
                    target.items.extend(items[: max(0, max_items - len(target.items))])
                elif isinstance(target, Global):
                    self._finding(f"container@{at}", "pickle.build-on-global", Severity.HIGH,
                                  f"ADDITEMS calls add() of the imported {target.qualname}",
                                  at, opcode="ADDITEMS")
                elif not isinstance(target, Call | Opaque | Persistent):
                    raise Malformed(f"ADDITEMS on a {type(target).__name__}", at)
            elif op == 0x91:  # FROZENSET
                stack.append(SetV(pop_mark(at)))
            elif op == 0x50:  # PERSID
                raw = line(at)
                try:
                    pid_s = raw.decode("ascii")
                except UnicodeDecodeError:
                    raise Malformed("persistent IDs in protocol 0 must be ASCII strings",
                                    at) from None
                stack.append(self._persistent(pid_s, at))
            elif op in (0x82, 0x83, 0x84):  # EXT1, EXT2, EXT4
                code = uint({0x82: 1, 0x83: 2, 0x84: 4}[op])
                if code <= 0:
                    raise Malformed("EXT specifies code <= 0", at)
                self._finding(f"ext{code}", "pickle.extension-code", Severity.HIGH,
                              f"imports extension code {code} from the copyreg registry; what "
                              "it names depends on the loading process, not the file", at,
                              code=str(code))
                stack.append(OPAQUE)
            elif op == 0x97:  # NEXT_BUFFER
                raise Malformed("pickle refers to out-of-band buffers that were not given", at)
            elif op == 0x98:  # READONLY_BUFFER
                top(at)
            else:
                raise Malformed(f"invalid load key {op:#04x}", at)

    def _newobj(self, cls: object, args: object, at: int, opname: str) -> Call:
        target = self._resolve(cls)
        if isinstance(target, Global):
            return Call(target, args)
        if isinstance(target, Call | Opaque | Persistent):
            self._finding(f"new@{at}", "pickle.computed-call", Severity.HIGH,
                          f"{opname} builds an instance of a computed class", at,
                          opcode=opname)
            return Call(target, args)
        raise Malformed(f"{opname} class argument isn't a type object", at)

    def _persistent(self, pid: object, at: int) -> Persistent:
        self.result.persistent_ids.append(pid)
        if not self.persistent_ok:
            self._finding("persid", "pickle.persistent-id", Severity.INFO,
                          "persistent id: a plain unpickler stops here with an error; "
                          "a custom one resolves it", at)
        return Persistent(pid)


class _ProbeDone(Exception):
    pass


def _rank(v: Verdict) -> int:
    return {Verdict.ALLOWED: 0, Verdict.UNKNOWN: 1, Verdict.DANGEROUS: 2}[v]


def walk_at(
    view: View,
    ctx: ScanContext | None,
    location: str,
    *,
    offset: int = 0,
    depth: int = 0,
    on_build: BuildHook | None = None,
    persistent_ok: bool = False,
) -> PickleResult:
    """Walk one pickle at ``offset`` inside ``view``; finding offsets are relative to it."""
    return walk(view.buf, view.start + offset, view.end, ctx, location, depth=depth,
                on_build=on_build, persistent_ok=persistent_ok, base=view.start)
