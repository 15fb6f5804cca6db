"""Walks paths, maps files read-only, sniffs each one and hands it to its format scanner.

Files are memory-mapped, never read whole: scanners skip tensor data by offset, so the cost
of a scan follows the size of the metadata, not of the weights.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from tsuba.core.errors import InputError
from tsuba.models.scan import archive, gguf, joblib, keras, numpy, onnx, safetensors, tensorflow
from tsuba.models.scan import torch as torch_format
from tsuba.models.scan.context import Limits, ScanContext
from tsuba.models.scan.detect import Format, sniff
from tsuba.models.scan.pickle import report_malformed, scan_pickle_stream, walk
from tsuba.models.scan.report import FileResult, Report, Severity
from tsuba.models.scan.view import View

Progress = Callable[[int], None]

_MODEL_SUFFIXES = frozenset({
    ".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".h5",
    ".hdf5", ".keras", ".onnx", ".pb", ".gguf", ".ggml", ".safetensors", ".msgpack",
    ".tflite", ".mlmodel", ".pdparams", ".model", ".sav", ".dill", ".mar", ".nemo",
})


def scan_path(path: str | os.PathLike[str], *, recursive: bool = True,
              limits: Limits | None = None, progress: Progress | None = None) -> Report:
    """Scan a file, or every file under a directory (recursively unless told not to).

    Raises :class:`InputError` when ``path`` does not exist; files that cannot be read are
    reported as unreadable in the result (the CLI exits 2 for them).
    """
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise InputError(f"no such file or directory: {root}")
    report = Report()
    for file in iter_files(root, recursive=recursive):
        report.files.append(scan_file(file, limits=limits, progress=progress))
    return report


def iter_files(root: Path, *, recursive: bool = True) -> Iterator[Path]:
    """Files under ``root`` in a stable order; directory links are not followed (loops)."""
    if not root.is_dir():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_file(path: Path, *, limits: Limits | None = None,
              progress: Progress | None = None) -> FileResult:
    location = str(path)
    ctx = ScanContext(location, limits or Limits(), dispatch=dispatch, progress=progress)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if path.is_symlink():
                ctx.add("file.link", Severity.INFO, f"symbolic link to {os.readlink(path)}",
                        location)
            if size == 0:
                fmt = _scan_view(ctx, View.of(b""), location, path)
            else:
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    fmt = _scan_view(ctx, View(mapped, 0, size), location, path)
    except (OSError, ValueError) as exc:
        ctx.add("format.unreadable", Severity.MEDIUM, f"cannot read the file: {exc}", location)
        return FileResult(location, "unreadable", 0, ctx.findings, unreadable=True)
    if progress is not None:
        progress(size)
    return FileResult(location, fmt, size, ctx.findings)


def scan_bytes(data: bytes, name: str = "<bytes>", *, limits: Limits | None = None) -> FileResult:
    """Scan content held in memory (an upload, a test fixture)."""
    ctx = ScanContext(name, limits or Limits(), dispatch=dispatch)
    fmt = _scan_view(ctx, View.of(data), name, Path(name))
    return FileResult(name, fmt, len(data), ctx.findings)


def _scan_view(ctx: ScanContext, view: View, location: str, path: Path) -> str:
    fmt = dispatch(ctx, view, location, 0)
    if fmt in (Format.UNKNOWN, Format.JSON, Format.PROTOBUF) and \
            path.suffix.lower() in _MODEL_SUFFIXES:
        ctx.add("format.unrecognized", Severity.LOW,
                f"named like a model file ({path.suffix}) but its content is not a format "
                "tsuba knows; not scanned", location)
    if fmt == Format.EMPTY:
        ctx.add("format.empty", Severity.LOW, "empty file", location)
    return fmt


def dispatch(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    """Sniff ``view`` and run its scanner; returns the format name it was taken for."""
    fmt = sniff(view)
    ctx.formats.append(fmt)
    handler = _HANDLERS.get(fmt)
    if handler is None:
        return str(fmt)
    try:
        return handler(ctx, view, location, depth)
    except RecursionError:
        ctx.unparseable(location, f"{fmt} content nested too deeply to scan")
    except Exception as exc:  # a scanner fault must never pass a file: fail closed
        ctx.unparseable(location, f"{fmt} content could not be scanned "
                        f"({type(exc).__name__}: {exc})", rule="scanner.error")
    return str(fmt)


def _pickle(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    hook = joblib.array_hook(ctx, view.buf, view.end, location, depth, view.start)
    first = walk(view.buf, view.start, view.end, ctx, location, depth=depth, on_build=hook,
                 base=view.start)
    if not first.ok:
        report_malformed(ctx, first, location, view.start)
        return "pickle"
    value = first.value
    if isinstance(value, int) and not isinstance(value, bool) and \
            value == torch_format.LEGACY_MAGIC:
        torch_format.scan_legacy_stream(ctx, view, location, depth, first)
        return "pytorch-legacy"
    if first.end < view.end:
        scan_pickle_stream(ctx, view, location, depth, on_build=hook, start=first.end, count=1)
    if any(g.module.endswith("numpy_pickle") for g in first.imports):
        return "joblib"
    return "pickle"


def _unsupported(kind: str) -> Callable[[ScanContext, View, str, int], str]:
    def handler(ctx: ScanContext, view: View, location: str, depth: int) -> str:
        ctx.add("archive.unsupported", Severity.MEDIUM,
                f"{kind} archive: tsuba cannot open it, so its content is not scanned "
                "(malicious models have been shipped this way)", location)
        return kind

    return handler


def _compressed(kind: str) -> Callable[[ScanContext, View, str, int], str]:
    def handler(ctx: ScanContext, view: View, location: str, depth: int) -> str:
        return archive.scan_compressed(ctx, view, location, depth, kind)

    return handler


def _ggml(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    ctx.add("format.unsupported", Severity.LOW, "legacy GGML file: no code-bearing fields, "
            "structure not checked", location)
    return "ggml"


_HANDLERS: dict[Format, Callable[[ScanContext, View, str, int], str]] = {
    Format.PICKLE: _pickle,
    Format.ZIP: archive.scan_zip,
    Format.TAR: archive.scan_tar,
    Format.NUMPY: numpy.scan_npy,
    Format.SAFETENSORS: safetensors.scan_safetensors,
    Format.GGUF: gguf.scan_gguf,
    Format.GGML: _ggml,
    Format.HDF5: keras.scan_hdf5,
    Format.PROTOBUF: lambda c, v, loc, d: onnx.scan_protobuf(c, v, loc, d, tensorflow),
    Format.JSON: keras.scan_json,
    Format.GZIP: _compressed("gzip"),
    Format.BZIP2: _compressed("bzip2"),
    Format.XZ: _compressed("xz"),
    Format.LZMA: _compressed("lzma"),
    Format.ZLIB: _compressed("zlib"),
    Format.ZSTD: _unsupported("zstd"),
    Format.LZ4: _unsupported("lz4"),
    Format.SEVEN_ZIP: _unsupported("7z"),
    Format.RAR: _unsupported("rar"),
}
