"""One fixture builder per published scanner bypass (2024 on): picklescan GHSAs and CVEs,
ModelScan false negatives, the nullifAI and JFrog research, fickling and saferpickle reports,
and the Keras, GGUF and ONNX CVEs.  Each builder returns the bytes of a file that the
advisory's technique produces; the test asserts tsuba reports it at the given severity.

Payloads are built from raw opcodes or by the pure-Python pickler with a placeholder global;
nothing here is ever loaded.
"""

from __future__ import annotations

import json
import pickle as P
import struct
from collections.abc import Callable
from dataclasses import dataclass

from scan_builders import (
    call,
    gguf,
    pb_field,
    proto,
    reduce_call,
    rename_local,
    set_flag,
    stack_global,
    su,
    torch_like_zip,
    zip_bytes,
)

from tsuba.models.scan import Severity

CMD = "__import__('os').system('id')"


@dataclass(frozen=True)
class Case:
    advisory: str
    technique: str
    build: Callable[[], bytes]
    name: str = "model.pkl"
    severity: Severity = Severity.CRITICAL
    rule: str = ""  # a rule that must be among the findings, when it matters


def _rc(module: str, name: str, *args: object) -> Callable[[], bytes]:
    return lambda: reduce_call(module, name, *args)


# advisory -> (module, qualified name) called through __reduce__, as the advisory describes.
_PICKLESCAN_GADGETS: list[tuple[str, str, str]] = [
    ("GHSA-4r9r-ch6f-vxmx", "torch.utils.bottleneck.__main__", "run_cprofile"),
    ("GHSA-4whj-rm5r-c2v8", "torch.utils.bottleneck.__main__", "run_autograd_prof"),
    ("GHSA-86cj-95qr-2p4f", "torch._dynamo.guards", "GuardBuilder.get"),
    ("GHSA-f4x7-rfwp-v3xw", "torch.fx.experimental.symbolic_shapes",
     "ShapeEnv.evaluate_guards_expression"),
    ("GHSA-f745-w6jp-hpxx", "torch.utils.collect_env", "run"),
    ("GHSA-jhph-76pp-mggw", "torch.utils.collect_env", "run_and_read_all"),
    ("GHSA-h3qp-7fh3-f8h4", "torch.utils.data.datapipes.utils.decoder", "basichandlers"),
    ("GHSA-vr7h-p6mm-wpmh", "torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("GHSA-vv6j-3g6g-2pvj", "torch.utils._config_module", "ConfigModule.load_config"),
    ("GHSA-5qwp-399c-mjwf", "trace", "Trace.run"),
    ("GHSA-g344-hcph-8vgg", "trace", "Trace.runctx"),
    ("GHSA-x696-vm39-cp64", "cProfile", "Profile.run"),
    ("GHSA-6vqj-c2q5-j97w", "cProfile", "Profile.runctx"),
    ("GHSA-f54q-57x4-jg88", "lib2to3.pgen2.grammar", "Grammar.loads"),
    ("GHSA-p9w7-82w4-7q8m", "lib2to3.pgen2.pgen", "ParserGenerator.make_label"),
    ("GHSA-3vg9-h568-4w9m", "idlelib.debugobj", "ObjectTreeItem.SetText"),
    ("GHSA-6w4w-5w54-rjvr", "idlelib.autocomplete", "AutoComplete.get_entity"),
    ("GHSA-7cq8-mj8x-j263", "idlelib.autocomplete", "AutoComplete.fetch_completions"),
    ("GHSA-8r4j-24qv-fmq9", "idlelib.calltip", "Calltip.fetch_tip"),
    ("GHSA-9xph-j2h6-g47v", "idlelib.calltip", "get_entity"),
    ("GHSA-m869-42cg-3xwr", "idlelib.run", "Executive.runcode"),
    ("GHSA-j343-8v2j-ff7w", "idlelib.pyshell", "ModifiedInterpreter.runcommand"),
    ("GHSA-3gf5-cxq9-w223", "idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("GHSA-cj3c-v495-4xqh", "code", "InteractiveInterpreter.runcode"),
    ("GHSA-xp4f-hrf8-rxw7", "ensurepip", "_run_pip"),
    ("GHSA-vvpj-8cmc-gx39", "pkgutil", "resolve_name"),
    ("GHSA-fqq6-7vqf-w3fg", "doctest", "debug_script"),
    ("GHSA-9w88-8rmg-7g2p", "cProfile", "runctx"),
    ("GHSA-49gj-c84q-6qm9", "cProfile", "run"),
    ("GHSA-7wx9-6375-f5wh", "profile", "run"),
    ("GHSA-q77w-mwjj-7mqx", "asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("GHSA-m273-6v24-x4m4", "distutils.file_util", "write_file"),
    ("GHSA-4675-36f9-wf6r", "ctypes", "CDLL"),
    ("GHSA-vqmv-47xg-9wpr", "pty", "spawn"),
    ("GHSA-r8g5-cgf2-4m4m", "numpy.f2py.crackfortran", "getlincoef"),
    ("GHSA-g38g-8gr9-h9xp (uuid)", "uuid", "_get_command_stdout"),
    ("GHSA-g38g-8gr9-h9xp (osx)", "_osx_support", "_read_output"),
    ("GHSA-g38g-8gr9-h9xp (aix)", "_aix_support", "_read_cmd_output"),
    ("GHSA-g38g-8gr9-h9xp (imaplib)", "imaplib", "IMAP4_stream"),
    ("GHSA-g38g-8gr9-h9xp (pyrepl)", "_pyrepl.pager", "pipe_pager"),
    ("GHSA-g38g-8gr9-h9xp (test)", "test.support.script_helper", "assert_python_ok"),
    ("GHSA-955r-x9j8-7rhh", "_operator", "attrgetter"),
    ("GHSA-46h3-79wf-xr6c", "_operator", "methodcaller"),
    ("CVE-2025-1716 (pip)", "pip", "main"),
    ("picklescan io.FileIO", "io", "FileIO"),
    ("picklescan urlopen", "urllib.request", "urlopen"),
    ("picklescan logging", "logging", "FileHandler"),
    ("picklescan timeit", "timeit", "timeit"),
    ("picklescan runpy", "runpy", "_run_code"),
    ("picklescan bdb", "bdb", "Bdb.run"),
    ("picklescan venv", "venv", "create"),
    ("picklescan pydoc", "pydoc", "pipepager"),
    ("picklescan torch codecache", "torch._inductor.codecache", "compile_file"),
    ("picklescan ssl DNS exfiltration", "ssl", "get_server_certificate"),
    ("picklescan cloudpickle CodeType", "types", "CodeType"),
    ("modelscan#338 multiprocessing", "multiprocessing.util", "spawnv_passfds"),
    ("modelscan#338 mlflow", "mlflow.projects.backend.local", "_run_entry_point"),
    ("modelscan#338 pandas", "pandas.io.parsers.readers", "read_csv"),
    ("saferpickle#1 shutil", "shutil", "copy"),
    ("fickling#108 pty", "pty", "spawn"),
    ("webbrowser", "webbrowser", "open"),
]


def _memo_confusion() -> bytes:
    """picklescan#22: strings parked in the memo under misleading slots, fetched back for
    STACK_GLOBAL so a scanner that ignores GET arguments sees torch.LongStorage."""
    return b"".join([
        P.UNICODE + b"os\n", P.PUT + b"2\n", P.POP,
        P.UNICODE + b"system\n", P.PUT + b"3\n", P.POP,
        P.UNICODE + b"torch\n", P.PUT + b"0\n", P.POP,
        P.UNICODE + b"LongStorage\n", P.PUT + b"1\n", P.POP,
        P.GET + b"2\n", P.GET + b"3\n", P.STACK_GLOBAL,
        P.MARK, P.UNICODE + b"id\n", P.TUPLE, P.REDUCE, P.STOP,
    ])


def _string_stack_global() -> bytes:
    """GHSA-9gvj-pp9x-gcfr: protocol 0 STRING operands for STACK_GLOBAL."""
    return (P.STRING + b"'os'\n" + P.STRING + b"'system'\n" + P.STACK_GLOBAL
            + P.STRING + b"'id'\n" + P.TUPLE1 + P.REDUCE + P.STOP)


def _payload_then_keyerror() -> bytes:
    """picklescan keyerror-exploit: the payload runs, then a GET of a missing memo slot."""
    return (proto() + P.GLOBAL + b"os\nsystem\n" + P.UNICODE + b"id\n" + P.TUPLE1 + P.REDUCE
            + P.POP + su("os") + P.MEMOIZE + P.BINGET + b"\x03" + P.BINGET + b"\x00"
            + P.STACK_GLOBAL + P.STOP)


def _payload_then_type_confusion() -> bytes:
    return (proto() + P.GLOBAL + b"os\nsystem\n" + P.UNICODE + b"id\n" + P.TUPLE1 + P.REDUCE
            + P.POP + P.BININT + struct.pack("<i", 42) + P.MEMOIZE + su("os") + P.MEMOIZE
            + P.BINGET + b"\x00" + P.BINGET + b"\x01" + P.STACK_GLOBAL + P.STOP)


def _nullifai_broken() -> bytes:
    """nullifAI (ReversingLabs, 2025): the payload first, then a stream the loader cannot
    finish; scanners that gave up on the error passed the file."""
    return call("os", "system", "id")[:-1] + b"\xff\xfe garbage"


def _nullifai_7z() -> bytes:
    """nullifAI: a PyTorch model compressed with 7z instead of zip."""
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\0" * 64


def _inst_exec() -> bytes:
    """INST opcode path (protocol 0): ``(S'...'\\ni__builtin__\\nexec``."""
    return b"(S'" + CMD.encode() + b"'\ni__builtin__\nexec\n."


def _obj_eval() -> bytes:
    return proto(2) + P.MARK + P.GLOBAL + b"builtins\neval\n" + su(CMD) + P.OBJ + P.STOP


def _sour_pickles() -> bytes:
    """Sour Pickles (BlackHat 2011), still the template of protocol 0 exploits."""
    return (b"c__builtin__\nglobals\n(tRp100\n0c__builtin__\ncompile\n(S'x=1'\nS''\nS'exec'\n"
            b"tRp101\n0c__builtin__\neval\n(g101\ng100\ntRp102\n0.")


def _partial_torch_load() -> bytes:
    """picklescan malicious19: functools.partial(torch.load, path, weights_only=False)."""
    return (proto(2) + P.GLOBAL + b"functools\npartial\n" + P.GLOBAL + b"torch\nload\n"
            + P.TUPLE1 + P.REDUCE + P.EMPTY_TUPLE + P.REDUCE + P.STOP)


def _pydoc_methodcaller() -> bytes:
    """GHSA-84r2-jw7c-4r5q: methodcaller("system", cmd)(pydoc.locate("os"))."""
    return (proto(2) + P.GLOBAL + b"operator\nmethodcaller\n" + su("system") + su("id")
            + P.TUPLE2 + P.REDUCE + P.GLOBAL + b"pydoc\nlocate\n" + su("os") + P.TUPLE1
            + P.REDUCE + P.TUPLE1 + P.REDUCE + P.STOP)


def _nested_pickle_loads() -> bytes:
    """picklescan malicious13: pickle.loads of an inner pickle held as bytes."""
    inner = call("os", "system", "id")
    return (proto(4) + P.GLOBAL + b"pickle\nloads\n" + P.BINBYTES + struct.pack("<I", len(inner))
            + inner + P.TUPLE1 + P.REDUCE + P.STOP)


def _concatenated() -> bytes:
    """picklescan malicious6: a benign pickle followed by a malicious one."""
    return P.dumps(["a", "b"]) + call("os", "system", "id")


def _legacy_magic_bypass() -> bytes:
    """picklescan pytorch_magic_bypass: the legacy format's magic number pickle is eval()."""
    magic = reduce_call("builtins", "eval", "0x1950A86A20F9469CFC6C", protocol=2)
    return magic + P.dumps(1001, 2) + P.dumps({}, 2) + P.dumps([], 2) + call("os", "system",
                                                                            "id")


def _torch_zip(member: str = "data.pkl", payload: bytes | None = None) -> bytes:
    return torch_like_zip(payload or reduce_call("os", "system", "id", protocol=2))


def _zip_name_mismatch() -> bytes:
    """CVE-2025-1944: local header and central directory name the entry differently."""
    return rename_local(_torch_zip(), b"archive/data.pkl", b"archive/datap.kl")


def _zip_flag(flag: int) -> Callable[[], bytes]:
    """CVE-2025-1945: flag bits that zipfile refuses and PyTorch ignores."""
    return lambda: set_flag(_torch_zip(), b"archive/data.pkl", flag)


def _zip_bad_crc() -> bytes:
    """CVE-2025-10156: a CRC error stops zipfile, not PyTorch."""
    data = bytearray(_torch_zip())
    at = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, at + 16, 0xDEADBEEF)
    return bytes(data)


def _zip_other_name() -> bytes:
    """CVE-2025-1889 / CVE-2025-10155: a pickle under a name no scanner expects."""
    return zip_bytes({"data.txt": call("os", "system", "id")})


def _keras_zip(config: object) -> bytes:
    return zip_bytes({"config.json": json.dumps(config).encode(),
                      "metadata.json": b'{"keras_version": "3.8.0"}',
                      "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 32})


def _keras_lambda() -> bytes:
    """CVE-2024-3660: Lambda layer with marshalled bytecode."""
    return _keras_zip({"class_name": "Sequential", "config": {"layers": [{
        "module": "keras.layers", "class_name": "Lambda", "config": {
            "function": {"class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}}]}})


def _keras_module_import() -> bytes:
    """CVE-2025-1550: config.json names an arbitrary module to import and call."""
    return _keras_zip({"module": "os", "class_name": "system", "config": {"command": "id"},
                       "registered_name": "system"})


def _keras_get_file() -> bytes:
    """CVE-2025-8747: keras.utils.get_file reached through a config function."""
    return _keras_zip({"class_name": "Sequential", "config": {"layers": [{
        "module": "keras.layers", "class_name": "Dense", "config": {"units": 1, "activation": {
            "module": "keras.utils", "class_name": "function", "config": "get_file",
            "registered_name": "get_file"}}}]}})


def _gguf_template() -> bytes:
    """CVE-2024-34359: a GGUF chat template that escapes into Python (llama-cpp-python)."""
    tpl = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}"
    return gguf({"general.architecture": "llama", "tokenizer.chat_template": tpl})


def _onnx_external_traversal() -> bytes:
    """CVE-2024-27318: external data location that climbs out of the model folder."""
    entry = pb_field(1, b"location") + pb_field(2, b"../../../../etc/passwd")
    tensor = pb_field(1, 1) + pb_field(2, 1) + pb_field(8, b"w") + pb_field(13, entry) \
        + pb_field(14, 1)
    graph = pb_field(1, pb_field(4, b"Relu")) + pb_field(2, b"g") + pb_field(5, tensor)
    return pb_field(1, 8) + pb_field(7, graph) + pb_field(8, pb_field(2, 17))


def _tar_traversal() -> bytes:
    """CVE-2024-5187: a model tarball whose member path escapes the extraction folder."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../evil.onnx")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
    return buf.getvalue()


CASES: list[Case] = [
    *(Case(a, f"{m}.{n} through __reduce__", _rc(m, n, CMD)) for a, m, n in _PICKLESCAN_GADGETS),
    Case("GHSA-jgw4-cr84-mqxg / CVE-2025-10155", "pickle saved with a .bin name",
         _rc("asyncio.unix_events", "_UnixSubprocessTransport._start", CMD), name="model.bin"),
    Case("CVE-2025-10157", "submodule of a blocked module (asyncio.unix_events)",
         _rc("asyncio.unix_events", "_UnixSubprocessTransport._start", CMD)),
    Case("GHSA-84r2-jw7c-4r5q", "operator.methodcaller on pydoc.locate", _pydoc_methodcaller),
    Case("picklescan#22", "memo slots confuse STACK_GLOBAL operands", _memo_confusion),
    Case("GHSA-9gvj-pp9x-gcfr", "STRING operands for STACK_GLOBAL", _string_stack_global),
    Case("picklescan keyerror-exploit", "payload, then a missing memo slot",
         _payload_then_keyerror),
    Case("picklescan type-confusion", "payload, then STACK_GLOBAL on an int",
         _payload_then_type_confusion),
    Case("nullifAI (broken pickle)", "payload, then garbage", _nullifai_broken),
    Case("nullifAI (7z)", "PyTorch model compressed with 7z", _nullifai_7z, name="model.pt",
         severity=Severity.MEDIUM, rule="archive.unsupported"),
    Case("picklescan malicious10", "INST opcode", _inst_exec),
    Case("OBJ opcode", "OBJ with builtins.eval", _obj_eval),
    Case("Sour Pickles", "protocol 0 __builtin__ globals/compile/eval", _sour_pickles),
    Case("picklescan malicious19", "functools.partial(torch.load)", _partial_torch_load),
    Case("picklescan malicious13", "pickle.loads of an embedded pickle", _nested_pickle_loads),
    Case("picklescan malicious6", "benign pickle followed by a malicious one", _concatenated),
    Case("picklescan magic bypass", "legacy PyTorch magic number built by eval",
         _legacy_magic_bypass, name="model.pt"),
    Case("CVE-2025-1944", "zip local/central name mismatch", _zip_name_mismatch,
         name="model.pt"),
    Case("CVE-2025-1945 (0x1)", "zip encryption flag", _zip_flag(0x1), name="model.pt"),
    Case("CVE-2025-1945 (0x20)", "zip patched-data flag", _zip_flag(0x20), name="model.pt"),
    Case("CVE-2025-1945 (0x40)", "zip strong-encryption flag", _zip_flag(0x40),
         name="model.pt"),
    Case("CVE-2025-10156", "zip CRC mismatch", _zip_bad_crc, name="model.pt"),
    Case("CVE-2025-1889", "pickle inside a zip under a .txt name", _zip_other_name,
         name="model.zip"),
    Case("CVE-2024-3660", "Keras Lambda with bytecode", _keras_lambda, name="model.keras",
         rule="keras.lambda"),
    Case("CVE-2025-1550", "Keras config imports an arbitrary module", _keras_module_import,
         name="model.keras", rule="keras.dangerous-object"),
    Case("CVE-2025-8747", "Keras config reaches keras.utils.get_file", _keras_get_file,
         name="model.keras", rule="keras.dangerous-object"),
    Case("CVE-2024-34359", "GGUF chat template SSTI", _gguf_template, name="model.gguf",
         rule="gguf.chat-template"),
    Case("CVE-2024-27318", "ONNX external data path traversal", _onnx_external_traversal,
         name="model.onnx", severity=Severity.HIGH, rule="onnx.external-data"),
    Case("CVE-2024-5187", "model tarball path traversal", _tar_traversal, name="model.tar",
         severity=Severity.HIGH, rule="archive.path-traversal"),
    Case("stack_global direct", "STACK_GLOBAL os.system",
         lambda: proto() + stack_global("os", "system") + su("id") + P.TUPLE1 + P.REDUCE
         + P.STOP),
]
