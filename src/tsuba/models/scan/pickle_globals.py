"""Which globals a pickle may import: an allow-list per framework, and what is known dangerous.

The allow-list decides: anything not on it is a finding.  The dangerous list only raises the
severity of what the allow-list already refused, so a gap in it costs a severity level, never
a detection.  Every allowed entry carries one line saying why loading it cannot run code that
the file chooses.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Verdict(StrEnum):
    ALLOWED = "allowed"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


_DATA = "builds a plain data value from literal arguments"

# (module, name) -> why loading it is safe.
SAFE_GLOBALS: dict[tuple[str, str], str] = {
    # Python builtins that only build data (protocol >= 3 spelling, and Python 2's).
    **{
        (mod, name): _DATA
        for mod in ("builtins", "__builtin__")
        for name in (
            "set", "frozenset", "list", "dict", "tuple", "bytearray", "bytes", "complex",
            "slice", "range", "xrange", "int", "float", "bool", "str", "unicode", "long",
        )
    },
    ("builtins", "object"): "base class argument of copyreg._reconstructor; creates nothing",
    ("__builtin__", "object"): "base class argument of copyreg._reconstructor; creates nothing",
    ("copyreg", "_reconstructor"): "protocol 0/1 object rebuild: base.__new__ of an imported class",
    ("copy_reg", "_reconstructor"): "Python 2 spelling of copyreg._reconstructor",
    ("_codecs", "encode"): "protocol <= 2 encodes bytes as (text, 'latin1'); codecs are data",
    ("collections", "OrderedDict"): _DATA,
    ("collections", "defaultdict"): "dict with a factory; the factory is an import checked itself",
    ("collections", "Counter"): _DATA,
    ("collections", "deque"): _DATA,
    ("datetime", "datetime"): _DATA,
    ("datetime", "date"): _DATA,
    ("datetime", "time"): _DATA,
    ("datetime", "timedelta"): _DATA,
    ("datetime", "timezone"): _DATA,
    ("decimal", "Decimal"): _DATA,
    ("fractions", "Fraction"): _DATA,
    ("uuid", "UUID"): "UUID value from bytes or int; no other uuid function is allowed",
    ("pathlib", "PosixPath"): "path value; building it touches no file",
    ("pathlib", "WindowsPath"): "path value; building it touches no file",
    ("pathlib", "PurePosixPath"): "path value; building it touches no file",
    ("pathlib", "PureWindowsPath"): "path value; building it touches no file",
    # numpy: arrays, dtypes, scalars, random generator state.
    **{
        (mod, name): why
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name, why in (
            ("_reconstruct", "ndarray.__new__ of an empty array that BUILD then fills"),
            ("scalar", "numpy scalar from a dtype and raw bytes"),
        )
    },
    **{
        (mod, "_frombuffer"): "protocol 5 array from a pickle buffer; no code"
        for mod in ("numpy.core.numeric", "numpy._core.numeric")
    },
    ("numpy", "ndarray"): "array type passed to _reconstruct",
    ("numpy", "dtype"): "dtype from a type string; BUILD sets byte order and fields",
    ("numpy.ma.core", "_mareconstruct"): "masked array rebuild; same as _reconstruct",
    ("numpy.ma.core", "MaskedArray"): "masked array type passed to _mareconstruct",
    ("numpy.random._pickle", "__randomstate_ctor"): "RandomState from a bit generator name",
    ("numpy.random._pickle", "__generator_ctor"): "Generator from a bit generator name",
    ("numpy.random._pickle", "__bit_generator_ctor"): "bit generator from an allow-listed name",
    ("numpy.random.bit_generator", "SeedSequence"): "seed state value",
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): "Cython state restore",
    **{
        (f"numpy.random._{low}", name): "bit generator state value"
        for low, name in (
            ("mt19937", "MT19937"), ("pcg64", "PCG64"), ("pcg64", "PCG64DXSM"),
            ("philox", "Philox"), ("sfc64", "SFC64"),
        )
    },
    # PyTorch: what torch.save writes for tensors, parameters and state dicts.
    **{
        ("torch._utils", name): "tensor rebuild from a storage handed over by persistent_load"
        for name in (
            "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
            "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
            "_rebuild_nested_tensor", "_rebuild_meta_tensor_no_storage",
            "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
            "_rebuild_device_tensor_from_cpu_tensor",
        )
    },
    ("torch._tensor", "_rebuild_from_type_v2"): "tensor subclass rebuild; its function is an "
    "import checked itself",
    ("torch.nn.parameter", "Parameter"): "parameter wrapper around a tensor",
    ("torch.nn.parameter", "Buffer"): "buffer wrapper around a tensor",
    ("torch", "Size"): _DATA,
    ("torch", "device"): "device name value",
    ("torch", "Tensor"): "tensor type used by _rebuild_from_type_v2",
    ("torch.storage", "UntypedStorage"): "storage type tag in persistent ids",
    ("torch.storage", "TypedStorage"): "storage type tag in persistent ids",
    ("torch.serialization", "_get_layout"): "layout value by name",
    **{
        ("torch", f"{kind}Storage"): "storage type tag in persistent ids"
        for kind in (
            "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
            "Bool", "ComplexFloat", "ComplexDouble", "QUInt8", "QInt8", "QInt32", "QUInt4x2",
            "QUInt2x4", "Untyped", "Float8_e4m3fn", "Float8_e5m2",
        )
    },
    **{
        ("torch", name): "dtype, layout, memory format or qscheme value by name"
        for name in (
            "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64",
            "long", "int32", "int", "int16", "short", "int8", "uint8", "uint16", "uint32",
            "uint64", "bool", "complex64", "cfloat", "complex128", "cdouble", "complex32",
            "chalf", "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "float8_e4m3fn",
            "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "bits8", "strided",
            "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn",
            "contiguous_format", "channels_last", "channels_last_3d", "preserve_format",
            "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric",
            "per_channel_symmetric", "per_channel_affine_float_qparams",
        )
    },
    # joblib: the array wrapper whose raw data follows in the stream.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): "marks raw array bytes that follow; no code",
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"): "older joblib location",
}

# Classes under these packages may be rebuilt: their pickled form is __new__ plus a state
# dict, and their __setstate__ only restores attributes.  Functions under them are not
# allowed (a function reference is a call target the file chooses).
SAFE_CLASS_PACKAGES: dict[str, str] = {
    "torch.nn.modules.": "layer classes; __setstate__ restores parameters and buffers",
    "sklearn.": "estimators; BaseEstimator.__setstate__ updates __dict__ only",
    "scipy.sparse.": "sparse matrix containers; state is arrays",
    "numpy.dtypes.": "dtype classes of numpy 2",
}

# Known to run code, reach the network, touch files or load further pickles.
DANGEROUS_MODULES: dict[str, str] = {
    "os": "runs commands and touches files", "posix": "os on POSIX", "nt": "os on Windows",
    "subprocess": "runs commands", "pty": "spawns processes", "sys": "interpreter state",
    "runpy": "runs code", "importlib": "imports arbitrary modules", "imp": "imports modules",
    "pkgutil": "resolves arbitrary names (pkgutil.resolve_name)", "zipimport": "imports code",
    "pydoc": "resolves arbitrary names (pydoc.locate) and runs pagers",
    "code": "runs code", "codeop": "compiles code", "shutil": "copies, moves, deletes files",
    "tempfile": "creates files", "socket": "network", "socketserver": "network",
    "ssl": "network", "http": "network", "urllib": "network", "urllib3": "network",
    "requests": "network", "httpx": "network", "aiohttp": "network", "ftplib": "network",
    "smtplib": "network", "poplib": "network", "imaplib": "network and commands",
    "nntplib": "network", "telnetlib": "network", "xmlrpc": "network",
    "webbrowser": "runs a browser", "ctypes": "native code", "_ctypes": "native code",
    "cffi": "native code", "marshal": "loads code objects", "pickle": "nested unpickling",
    "_pickle": "nested unpickling", "cPickle": "nested unpickling", "shelve": "unpickles",
    "dill": "loads code", "cloudpickle": "loads code", "operator": "attribute and method "
    "callers that reach any method", "_operator": "operator internals",
    "functools": "partial/reduce wrap any callable", "types": "builds code and functions",
    "profile": "runs code", "cProfile": "runs code", "_lsprof": "profiler", "pdb": "runs code",
    "bdb": "runs code", "trace": "runs code", "timeit": "runs code", "doctest": "runs code",
    "idlelib": "runs code", "lib2to3": "evaluates grammar files", "tkinter": "GUI and Tcl",
    "turtle": "GUI", "pip": "installs packages", "ensurepip": "runs pip", "venv": "runs "
    "commands", "distutils": "writes files and runs compilers", "setuptools": "runs builds",
    "multiprocessing": "spawns processes", "concurrent": "runs callables",
    "threading": "runs callables", "_thread": "runs callables", "signal": "process signals",
    "asyncio": "subprocesses and network", "io": "opens files", "_io": "opens files",
    "codecs": "opens files", "logging": "handlers open files and sockets",
    "_osx_support": "runs commands", "_aix_support": "runs commands", "_pyrepl": "runs "
    "pagers", "test": "test helpers run interpreters", "sqlite3": "opens databases",
    "platform": "runs commands", "uuid._get_command_stdout": "runs commands",
    "uuid._popen": "runs commands", "fcntl": "file descriptors", "mmap": "maps files",
    "zipfile": "extracts files", "tarfile": "extracts files", "gc": "object graph access",
    "inspect": "frame and code access", "yaml": "yaml.load runs code",
    "jinja2": "template rendering runs code", "copyreg": "changes the extension registry",
    "copy_reg": "changes the extension registry", "joblib": "joblib.load unpickles files",
    "numpy.load": "loads pickles from files", "numpy.f2py": "evaluates Fortran expressions",
    "numpy.testing": "runs commands", "numpy.distutils": "runs compilers",
    "numpy.ctypeslib": "native code", "numpy.lib.npyio": "loads pickles from files",
    "torch.load": "unpickles further files", "torch.serialization": "unpickles files",
    "torch.hub": "downloads and runs code", "torch.jit": "compiles and runs TorchScript",
    "torch.package": "imports packaged code", "torch.utils.cpp_extension": "compiles and "
    "loads native code", "torch.utils.collect_env": "runs commands",
    "torch.utils.bottleneck": "runs code under a profiler", "torch._dynamo": "evaluates "
    "guard expressions", "torch.fx": "evaluates generated code", "torch._inductor": "compiles "
    "code", "torch.utils.data.datapipes": "decoders unpickle data",
    "torch.utils._config_module": "loads pickled config", "torch.distributed": "remote calls",
    "torch._C": "native bindings", "torch.library": "registers operators",
    "torch.ops": "calls any registered operator", "torch.compile": "compiles code",
    "mlflow": "runs project entry points", "pandas.io": "reads URLs and files",
    "pandas.read_csv": "reads URLs", "pandas.read_pickle": "unpickles files",
    "keras": "framework loaders", "tensorflow": "framework file and process ops",
}

# Builtins that are not data constructors.
DANGEROUS_BUILTINS = frozenset({
    "eval", "exec", "execfile", "compile", "open", "file", "__import__", "getattr", "setattr",
    "delattr", "globals", "locals", "vars", "input", "raw_input", "breakpoint", "help", "exit",
    "quit", "apply", "reload", "memoryview", "classmethod", "staticmethod", "property",
    "super", "type", "object.__subclasses__", "print", "dir", "id", "hasattr", "callable",
})

# Segments of a dotted path that reach dangerous objects through attribute traversal
# (``torch`` + ``_utils.os.system``).
_DANGEROUS_SEGMENTS = frozenset({
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "__builtins__",
    "system", "popen", "eval", "exec", "compile", "__import__", "__globals__", "__code__",
    "__subclasses__", "__class__", "__dict__", "__reduce__", "__reduce_ex__", "__getattribute__",
    "getattr", "importlib", "runpy", "pickle", "marshal", "ctypes", "load", "loads",
})

_CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


def classify(module: str, name: str) -> tuple[Verdict, str]:
    """The verdict on importing ``name`` from ``module`` and the reason for it."""
    why = SAFE_GLOBALS.get((module, name))
    if why is not None:
        return Verdict.ALLOWED, why
    danger = _danger(module, name)
    if danger:
        return Verdict.DANGEROUS, danger
    if "." not in name and _CLASS_NAME.match(name):
        for prefix, why in SAFE_CLASS_PACKAGES.items():
            if (module + ".").startswith(prefix):
                return Verdict.ALLOWED, why
    if "." in name:
        return Verdict.UNKNOWN, "dotted name walks attributes of an imported module"
    return Verdict.UNKNOWN, "not on the allow-list"


def _danger(module: str, name: str) -> str:
    if module in ("builtins", "__builtin__", "__builtins__"):
        head = name.split(".", 1)[0]
        if head in DANGEROUS_BUILTINS or head.startswith("__") or "." in name:
            return f"builtin {name} runs code or reaches arbitrary objects"
        return ""
    full = f"{module}.{name}"
    parts = full.split(".")
    for i in range(len(parts), 0, -1):
        why = DANGEROUS_MODULES.get(".".join(parts[:i]))
        if why:
            return f"{'.'.join(parts[:i])}: {why}"
    attrs = name.split(".")
    if len(attrs) > 1 and any(seg in _DANGEROUS_SEGMENTS for seg in attrs):
        return "attribute path reaches a dangerous object"
    if any(seg in ("__globals__", "__code__", "__subclasses__", "__builtins__") for seg in parts):
        return "reaches interpreter internals"
    return ""


def is_class_name(name: str) -> bool:
    return bool(_CLASS_NAME.match(name.rsplit(".", 1)[-1]))
