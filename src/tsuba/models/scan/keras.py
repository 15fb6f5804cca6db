"""Keras models: ``.keras`` zips (config.json), legacy ``.h5`` (the ``model_config``
attribute) and SavedModel ``keras_metadata.pb``: the layer config is where code hides.

Findings: Lambda layers carrying marshalled Python bytecode (CVE-2024-3660, and in .h5 even
under safe_mode, CVE-2025-9905); objects rebuilt from modules outside Keras (CVE-2025-1550);
functions such as ``keras.utils.get_file`` reached through the config (CVE-2025-8747); layers
that read local files or URLs named in the config.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tsuba.models.scan.archive import ZipArchive, scan_members
from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle_globals import DANGEROUS_MODULES
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

_KERAS_MODULES = re.compile(
    r"^(keras|tf_keras|tensorflow\.keras|keras_hub|keras_nlp|keras_cv)"
    r"(\.src)?(\.(layers|models|engine|initializers|regularizers|constraints|activations|"
    r"losses|metrics|optimizers|saving|mixed_precision|dtype_policies|backend|ops|"
    r"applications|preprocessing|random)(\.[\w.]+)?)?$"
)
_DANGEROUS_KERAS = {
    "keras.utils": "get_file downloads files",
    "keras.src.utils": "get_file downloads files",
    "keras.config": "enable_unsafe_deserialization turns safe mode off",
    "keras.src.saving": "loads further models",
    "keras.saving": "loads further models",
    "keras.models": "load_model loads further models",
}
_SAFE_FUNCTION_MODULES = re.compile(
    r"^(keras|tf_keras)(\.src)?\.(activations|losses|metrics|initializers|ops)(\.[\w.]+)?$"
)
_PATH_KEYS = {"vocabulary", "vocabulary_file", "file_path", "filepath", "path", "url",
              "merges", "proto", "spm_model_file", "idf_weights"}
_TF_OPS = re.compile(r"\b(io\.(read|write)_file|py_function|numpy_function|py_func|"
                     r"gfile|system|subprocess)\b")


def is_keras_zip(names: list[str]) -> bool:
    return "config.json" in names and ("metadata.json" in names or any(
        n.startswith("model.weights") for n in names))


def scan_keras_zip(ctx: ScanContext, archive: ZipArchive, depth: int) -> None:
    for e in archive.entries:
        if e.name == "config.json":
            data = archive.read(e)
            if data is not None:
                scan_config_bytes(ctx, data.tobytes(), f"{archive.location}!{e.name}")
    scan_members(ctx, archive, depth, skip=lambda e: e.name == "config.json")


def scan_json(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    """A JSON file is judged only when it is a Keras model config."""
    data = view.tobytes()
    if b'"class_name"' in data:
        scan_config_bytes(ctx, data, location)
        return "keras-config"
    return "json"


def scan_config_bytes(ctx: ScanContext, data: bytes, location: str) -> None:
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        ctx.unparseable(location, f"Keras config is not valid JSON: {exc}")
        return
    check_config(ctx, config, location)


def check_config(ctx: ScanContext, node: Any, location: str, path: str = "$",
                 depth: int = 0) -> None:
    if depth > 200:
        ctx.unparseable(location, "Keras config nested too deep")
        return
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_config(ctx, item, location, f"{path}[{i}]", depth + 1)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class_name")
    config = node.get("config")
    module = node.get("module")
    if cls in ("Lambda", "TFOpLambda", "__lambda__") or (
        isinstance(config, dict) and "function" in config and cls in ("Lambda",)
    ):
        _lambda(ctx, node, location, path)
    if cls == "function" and isinstance(module, str):
        name = config if isinstance(config, str) else "?"
        _function(ctx, module, name, location, path)
    elif isinstance(module, str) and cls not in (None, "__lambda__", "__tensor__",
                                                 "__numpy__", "__bytes__", "__typespec__"):
        _module(ctx, module, str(cls), node.get("registered_name"), location, path)
    if isinstance(config, dict):
        for key, value in config.items():
            if key in _PATH_KEYS and isinstance(value, str) and (
                value.startswith(("/", "~", "\\", "file:", "http:", "https:", "gs:", "s3:"))
                or ".." in value.replace("\\", "/").split("/")
            ):
                ctx.add("keras.external-path", Severity.HIGH,
                        f"{cls} config {key!r} points at {value!r}: loading reads that file "
                        "or URL", location, path=f"{path}.config.{key}")
    for key, value in node.items():
        check_config(ctx, value, location, f"{path}.{key}", depth + 1)


def _lambda(ctx: ScanContext, node: dict[str, Any], location: str, path: str) -> None:
    config = node.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    if node.get("class_name") == "__lambda__" or isinstance(function, list | tuple) or (
        isinstance(function, dict) and function.get("class_name") == "__lambda__"
    ):
        ctx.add("keras.lambda", Severity.CRITICAL,
                "Lambda layer with marshalled Python bytecode: it runs when the model loads "
                "(safe_mode off, or any .h5 load: CVE-2024-3660, CVE-2025-9905)", location,
                path=path)
    elif node.get("class_name") == "TFOpLambda":
        name = str(config.get("function", "")) if isinstance(config, dict) else ""
        if _TF_OPS.search(name):
            ctx.add("keras.lambda", Severity.CRITICAL,
                    f"TFOpLambda calls {name}, which touches files or runs Python", location,
                    path=path)
    else:
        ctx.add("keras.lambda", Severity.MEDIUM,
                f"Lambda layer calling {function!r}: code the scanner cannot see", location,
                path=path)


def _function(ctx: ScanContext, module: str, name: str, location: str, path: str) -> None:
    if _SAFE_FUNCTION_MODULES.match(module):
        return
    why = _DANGEROUS_KERAS.get(module) or _dangerous_module(module)
    if why:
        ctx.add("keras.dangerous-object", Severity.CRITICAL,
                f"config calls {module}.{name} ({why})", location, path=path)
    else:
        ctx.add("keras.custom-object", Severity.HIGH,
                f"config calls function {module}.{name}, outside Keras' own functions",
                location, path=path)


def _module(ctx: ScanContext, module: str, cls: str, registered: object, location: str,  # noqa: PLR0917 -- the config node's fields
            path: str) -> None:
    why = _DANGEROUS_KERAS.get(module) or _dangerous_module(module)
    if why:
        ctx.add("keras.dangerous-object", Severity.CRITICAL,
                f"config rebuilds {module}.{cls} ({why}; CVE-2025-1550)", location, path=path)
    elif not _KERAS_MODULES.match(module):
        ctx.add("keras.custom-object", Severity.MEDIUM,
                f"config rebuilds {cls} from {module}, outside Keras (registered as "
                f"{registered!r}); its code runs at load", location, path=path)


def _dangerous_module(module: str) -> str:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        why = DANGEROUS_MODULES.get(".".join(parts[:i]))
        if why and parts[0] not in ("keras", "tensorflow"):
            return why
    if parts[0] in ("builtins", "__builtin__"):
        return "Python builtins"
    return ""


def scan_hdf5(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    """Legacy Keras ``.h5``: the model config is a string attribute of the root group."""
    configs = _configs_with_h5py(ctx, view, location)
    if configs is None:
        configs = _configs_from_bytes(view)
        if configs:
            ctx.add("keras.h5-fallback", Severity.INFO,
                    "h5py is not installed: configs found by a byte search of the file", location)
    for raw in configs:
        scan_config_bytes(ctx, raw, location)
    return "keras-h5" if configs else "hdf5"


def _configs_with_h5py(ctx: ScanContext, view: View, location: str) -> list[bytes] | None:
    try:
        import h5py  # noqa: PLC0415 (optional)
    except ImportError:
        return None
    import io  # noqa: PLC0415

    if len(view) > ctx.limits.max_member_bytes:
        return None
    try:
        with h5py.File(io.BytesIO(view.tobytes()), "r") as f:
            out = []
            for key in ("model_config", "training_config"):
                value = f.attrs.get(key)
                if value is None:
                    continue
                out.append(value if isinstance(value, bytes) else str(value).encode())
            return out
    except (OSError, ValueError, RuntimeError) as exc:
        ctx.unparseable(location, f"HDF5 file cannot be opened: {exc}")
        return []


def _configs_from_bytes(view: View) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while len(out) < 16:
        at = view.find(b'{"class_name"', pos)
        if at < 0:
            break
        end = view.find(b"\x00", at)
        chunk = view.read(at, (end if end > 0 else len(view)) - at)
        decoder = json.JSONDecoder()
        try:
            _, used = decoder.raw_decode(chunk.decode("utf-8", "replace"))
            out.append(chunk[:used])
        except ValueError:
            out.append(chunk[:1 << 20])
        pos = at + 1
    return out
