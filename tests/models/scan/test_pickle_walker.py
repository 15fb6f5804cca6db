"""The pickle simulation: every opcode path to an import or a call, memo tricks, malformed
and truncated streams, and fuzzing that it always ends with a verdict (never a crash)."""

from __future__ import annotations

import collections
import datetime
import pickle as P
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_builders import call, global_, proto, reduce_call, stack_global, su

from tsuba.models.scan import Severity, scan_bytes
from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle import walk
from tsuba.models.scan.pickle_globals import Verdict, classify

BENIGN = [
    ["a", "b", {"c": (1, 2.5, None, True)}],
    {"nested": [set([1, 2]), frozenset([3]), bytearray(b"xy"), b"\x00" * 1000]},
    collections.OrderedDict(a=1),
    datetime.datetime(2024, 1, 2, 3, 4, 5),
    complex(1, 2),
    list(range(3000)),
]


def rules(data: bytes) -> set[str]:
    return {f.rule for f in scan_bytes(data).findings}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("obj", BENIGN, ids=lambda o: type(o).__name__)
def test_benign_pickles_of_every_protocol_are_clean(obj: object, protocol: int) -> None:
    result = scan_bytes(P.dumps(obj, protocol=protocol))
    assert result.format == "pickle"
    assert result.max_severity is None, [f.to_dict() for f in result.findings]


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_of_a_dangerous_global_in_every_protocol(protocol: int) -> None:
    result = scan_bytes(reduce_call("os", "system", "id", protocol=protocol))
    assert result.max_severity is Severity.CRITICAL
    assert any(f.detail.get("module") in ("os", "posix") for f in result.findings)


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(call("subprocess", "run", "id"), id="GLOBAL+REDUCE"),
        pytest.param(call("subprocess", "run", "id", via="STACK_GLOBAL"), id="STACK_GLOBAL"),
        pytest.param(b"(S'id'\nisubprocess\ncall\n.", id="INST"),
        pytest.param(proto(2) + P.MARK + global_("subprocess", "call") + su("id") + P.OBJ
                     + P.STOP, id="OBJ"),
        pytest.param(proto(2) + global_("subprocess", "Popen") + su("id") + P.TUPLE1
                     + P.NEWOBJ + P.STOP, id="NEWOBJ"),
        pytest.param(proto(4) + stack_global("subprocess", "Popen") + su("id") + P.TUPLE1
                     + P.EMPTY_DICT + P.NEWOBJ_EX + P.STOP, id="NEWOBJ_EX"),
        pytest.param(proto(2) + global_("subprocess", "Popen") + P.STOP, id="import-only"),
        pytest.param(b"c__builtin__\neval\n(S'1'\ntR.", id="python2-builtins"),
        pytest.param(proto(4) + su("os") + P.MEMOIZE + su("system") + P.MEMOIZE + P.POP + P.POP
                     + P.BINGET + b"\x00" + P.BINGET + b"\x01" + P.STACK_GLOBAL + P.STOP,
                     id="memoize-binget"),
        pytest.param(proto(4) + su("os") + P.LONG_BINPUT + struct.pack("<I", 70000)
                     + su("system") + P.BINPUT + b"\x07" + P.POP + P.POP + P.LONG_BINGET
                     + struct.pack("<I", 70000) + P.BINGET + b"\x07" + P.STACK_GLOBAL + P.STOP,
                     id="long-binput"),
        pytest.param(proto(4) + su("os") + su("system") + P.DUP + P.POP + P.STACK_GLOBAL + P.STOP,
                     id="dup"),
        pytest.param(proto(4) + P.MARK + su("posix") + su("system") + P.POP_MARK + su("os")
                     + su("system") + P.STACK_GLOBAL + P.STOP, id="pop-mark-decoy"),
        pytest.param(proto(4) + P.SHORT_BINSTRING + b"\x02os" + P.BINSTRING
                     + struct.pack("<i", 6) + b"system" + P.STACK_GLOBAL + P.STOP,
                     id="binstring-operands"),
        pytest.param(b"Vos\nVsystem\n\x93.", id="unicode-operands"),
        pytest.param(proto(2) + global_("torch", "_utils.os.system") + P.STOP,
                     id="dotted-attribute-path"),
    ],
)
def test_every_opcode_path_to_a_dangerous_import(stream: bytes) -> None:
    result = scan_bytes(stream)
    assert result.max_severity is Severity.CRITICAL, [f.to_dict() for f in result.findings]


def test_unknown_import_is_medium_and_unknown_function_call_high() -> None:
    cls = proto(2) + global_("mypackage.models", "Net") + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP
    fn = call("mypackage.tools", "prepare", "x")
    assert scan_bytes(cls).max_severity is Severity.MEDIUM
    assert scan_bytes(fn).max_severity is Severity.HIGH


def test_computed_callables_are_high() -> None:
    # REDUCE on the result of an allowed call: what is called is not an import at all.
    stream = (proto(2) + global_("collections", "OrderedDict") + P.EMPTY_TUPLE + P.REDUCE
              + P.EMPTY_TUPLE + P.REDUCE + P.STOP)
    assert "pickle.computed-call" in rules(stream)
    persistent = proto(2) + su("x") + P.BINPERSID + P.EMPTY_TUPLE + P.REDUCE + P.STOP
    assert "pickle.computed-call" in rules(persistent)


def test_unresolvable_stack_global_operands_are_high() -> None:
    stream = (proto(4) + global_("_codecs", "encode") + su("os") + su("latin1") + P.TUPLE2
              + P.REDUCE + su("system") + P.STACK_GLOBAL + P.STOP)
    assert "pickle.unresolved-import" in rules(stream)


def test_build_on_an_imported_module_is_high() -> None:
    stream = (proto(2) + global_("torch", "_utils") + P.EMPTY_DICT + su("x") + P.NONE
              + P.SETITEM + P.BUILD + P.STOP)
    found = rules(stream)
    assert "pickle.build-on-global" in found


def test_extension_registry_codes_are_high() -> None:
    for op, arg in ((P.EXT1, b"\x01"), (P.EXT2, b"\x01\x01"), (P.EXT4, b"\x01\0\0\0")):
        stream = proto(2) + op + arg + P.EMPTY_TUPLE + P.REDUCE + P.STOP
        assert "pickle.extension-code" in rules(stream)


def test_nested_pickle_in_bytes_is_scanned() -> None:
    inner = P.dumps([1] * 100, protocol=4)[:-1] + call("os", "system", "id")[2:]
    inner = call("os", "system", "id").ljust(300, b"\0")  # parses, then padding
    outer = P.dumps({"blob": inner}, protocol=4)
    assert scan_bytes(outer).max_severity is Severity.CRITICAL


def test_array_bytes_that_look_like_a_pickle_are_not_findings() -> None:
    fake = b"\x80\x02" + bytes(range(256)) * 4  # starts like a pickle, does not parse
    assert scan_bytes(P.dumps({"w": fake}, protocol=4)).max_severity is None


def test_payload_before_a_failure_is_reported_with_the_failure() -> None:
    stream = call("os", "system", "id")[:-1] + P.BINGET + b"\x09" + P.STOP
    found = rules(stream)
    assert {"pickle.dangerous-import", "pickle.malformed"} <= found


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (proto(9) + P.NONE + P.STOP, "unsupported pickle protocol"),
        (proto(4) + P.BINGET + b"\x01" + P.STOP, "memo value not found"),
        (proto(4) + P.POP + P.STOP, "underflow"),
        (proto(4) + P.MARK + P.STOP, "STOP with an empty stack"),
        (proto(4) + P.TUPLE + P.STOP, "could not find MARK"),
        (proto(4) + su("a") + su("b") + P.PUT + b"-1\n" + P.STOP, "negative PUT"),
        (proto(4) + P.FRAME + struct.pack("<Q", 1 << 40) + P.NONE + P.STOP, "FRAME"),
        (proto(4) + P.BININT1 + b"\x01" + su("x") + P.STACK_GLOBAL + P.STOP, "requires str"),
        (proto(4) + su("a") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, "not callable"),
        (b"cmod\n\xf8\n.", "UTF-8"),
        (proto(4) + P.NEXT_BUFFER + P.STOP, "out-of-band"),
        (proto(4) + b"\xff", "invalid load key"),
        (proto(4) + P.BINUNICODE + struct.pack("<I", 1 << 30) + b"abc", "truncated"),
        (proto(4) + P.EMPTY_DICT + P.MARK + su("k") + P.SETITEMS + P.STOP, "odd number"),
        (proto(4) + P.NONE, "ends before STOP"),
        (b"S'unquoted\n.", "quoted"),
    ],
)
def test_streams_the_loader_rejects_are_malformed_findings(stream: bytes, why: str) -> None:
    result = scan_bytes(stream)
    malformed = [f for f in result.findings if f.rule == "pickle.malformed"]
    if not malformed:  # not taken for a pickle at all: then nothing runs either
        assert result.format != "pickle"
        return
    assert why in malformed[0].message
    assert malformed[0].severity is Severity.MEDIUM


def test_trailing_non_pickle_data_is_low() -> None:
    result = scan_bytes(P.dumps([1, 2]) + b"\n\n\t\t")
    assert {f.rule for f in result.findings} == {"pickle.trailing-data"}
    assert result.max_severity is Severity.LOW


def test_allow_list_entries_all_carry_a_reason() -> None:
    from tsuba.models.scan.pickle_globals import SAFE_CLASS_PACKAGES, SAFE_GLOBALS

    assert all(why.strip() for why in SAFE_GLOBALS.values())
    assert all(why.strip() for why in SAFE_CLASS_PACKAGES.values())
    assert classify("torch._utils", "_rebuild_tensor_v2")[0] is Verdict.ALLOWED
    assert classify("torch", "load")[0] is Verdict.DANGEROUS
    assert classify("sklearn.linear_model._logistic", "LogisticRegression")[0] \
        is Verdict.ALLOWED
    assert classify("sklearn.utils", "load_thing")[0] is Verdict.UNKNOWN  # functions are not
    assert classify("builtins", "getattr")[0] is Verdict.DANGEROUS
    assert classify("builtins", "set")[0] is Verdict.ALLOWED


def test_probe_walk_has_no_side_channel_on_context() -> None:
    ctx = ScanContext("x")
    data = call("os", "system", "id")
    result = walk(data, 0, len(data), None, "x")
    assert result.ok and [g.qualname for g in result.imports] == ["os.system"]
    assert ctx.findings == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_random_bytes_always_get_a_verdict(data: bytes) -> None:
    result = scan_bytes(data, "fuzz.bin")
    assert result.format
    for f in result.findings:
        assert f.rule != "scanner.error", f.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([P.dumps(o, protocol=p) for o in BENIGN[:4] for p in (0, 2, 4, 5)]
                    + [reduce_call("os", "system", "id", protocol=p) for p in (0, 2, 4)]),
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6),
    st.integers(0, 4096),
)
def test_fuzz_mutated_pickles_never_crash_and_payloads_stay_found(
    base: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(base)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    mutated = bytes(data[: max(1, len(data) - cut % max(1, len(data)))])
    result = scan_bytes(mutated, "fuzz.pkl")
    assert all(f.rule != "scanner.error" for f in result.findings)
    if mutated == base and b"system" in base:
        assert result.max_severity is Severity.CRITICAL
