"""PyTorch checkpoints: the zip format (``torch.save`` since 1.6), the legacy stream of
pickles followed by raw storages, and the older tar format.

``torch.load`` without ``weights_only`` unpickles every pickle named here with the full
unpickler, including the legacy magic-number pickle that comes before any check.  Storage
records are skipped by size and only checked against the persistent ids that refer to them.
"""

from __future__ import annotations

import re
import struct

from tsuba.models.scan.archive import ZipArchive, ZipEntry, scan_members
from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.pickle import (
    Global,
    ListV,
    PickleResult,
    looks_like_pickle,
    report_malformed,
    scan_pickle_stream,
    walk,
)
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

ELEMENT_SIZE = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1, "Float8_e4m3fnStorage": 1,
    "Float8_e5m2Storage": 1,
}
_METADATA = {"version", ".data/version", "byteorder", ".format_version", ".storage_alignment",
             ".data/serialization_id"}
_STORAGE_NAME = re.compile(r"^[^/]+/data/[^/]+$")


def is_torch_zip(names: list[str]) -> bool:
    return any(re.fullmatch(r"[^/]+/(data|constants)\.pkl", n) for n in names)


def is_torch_tar(names: list[str]) -> bool:
    return {"storages", "tensors", "pickle"} <= set(names)


def scan_torch_zip(ctx: ScanContext, archive: ZipArchive, depth: int) -> None:
    """Every ``.pkl`` record is unpickled by torch.load or torch.jit.load; TorchScript code
    runs on load; storages must be what the persistent ids say."""
    loc = archive.location
    first = archive.entries[0].name if archive.entries else ""
    prefix = first.split("/", 1)[0] + "/" if "/" in first else ""
    by_name = {e.name: e for e in archive.entries}
    persistent: list[object] = []
    code = [e.name for e in archive.entries if e.name.startswith(f"{prefix}code/")
            and e.name.endswith(".py")]
    if code:
        ctx.add("torch.torchscript", Severity.MEDIUM,
                f"TorchScript archive with {len(code)} code file(s): torch.load hands it to "
                "torch.jit.load, which runs that code", loc, first_code=code[0])
    for e in archive.entries:
        if not e.name.endswith(".pkl") or e.is_dir:
            continue
        data = archive.read(e)
        if data is None:
            continue
        result = walk(data.buf, data.start, data.end, ctx, f"{loc}!{e.name}", depth=depth + 1,
                      persistent_ok=True)
        if not result.ok:
            report_malformed(ctx, result, f"{loc}!{e.name}", data.start)
        elif result.end < data.end:  # a caller reading on would run what follows
            scan_pickle_stream(ctx, data, f"{loc}!{e.name}", depth + 1, start=result.end,
                               count=1)
        persistent.extend(result.persistent_ids)
    _check_storages(ctx, archive, prefix, by_name, persistent)

    def skip(e: ZipEntry) -> bool:
        if e.name.endswith(".pkl"):
            return True
        rel = e.name[len(prefix):] if e.name.startswith(prefix) else e.name
        if rel in _METADATA or (rel.startswith("code/") and rel.endswith((".py", ".debug_pkl"))):
            return True
        return bool(_STORAGE_NAME.match(e.name) or rel.startswith(".data/"))

    scan_members(ctx, archive, depth, skip)
    _probe_storages(ctx, archive, prefix)


def _check_storages(ctx: ScanContext, archive: ZipArchive, prefix: str,
                    by_name: dict[str, ZipEntry], persistent: list[object]) -> None:
    for pid in persistent:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            if not (isinstance(pid, tuple) and pid and pid[0] == "module"):
                ctx.add_once(repr(pid)[:64], "torch.persistent-id", Severity.MEDIUM,
                             "persistent id of an unknown kind; torch.load refuses or resolves "
                             "it in ways the scanner cannot check", archive.location)
            continue
        _, stype, key, _location, numel = pid[:5]
        name = f"{prefix}data/{key}"
        entry = by_name.get(name)
        if entry is None:
            ctx.add_once(name, "torch.storage", Severity.MEDIUM,
                         f"storage {key!r} named in the pickle is missing from the archive",
                         archive.location)
            continue
        size = ELEMENT_SIZE.get(stype.name, 0) if isinstance(stype, Global) else 0
        if isinstance(numel, int) and size and entry.size < numel * size:
            ctx.add_once(name, "torch.storage", Severity.MEDIUM,
                         f"storage {key!r} holds {entry.size} bytes, the pickle needs "
                         f"{numel * size}", f"{archive.location}!{name}")


def _probe_storages(ctx: ScanContext, archive: ZipArchive, prefix: str) -> None:
    """A storage record that is itself a clean-parsing pickle with imports is reported: only
    a caller that picks it as ``pickle_file`` unpickles it, but nothing else writes one."""
    for e in archive.entries:
        if not _STORAGE_NAME.match(e.name) or e.method != 0:
            continue
        head = archive.read(e, limit=64, verify=False)
        if head is None or not looks_like_pickle(head):
            continue
        data = archive.read(e, verify=False)
        if data is None:
            continue
        probe = ScanContext(ctx.path, ctx.limits)
        result = walk(data.buf, data.start, data.end, probe, f"{archive.location}!{e.name}")
        if result.ok and any(g.verdict != "allowed" for g in result.imports):
            ctx.findings.extend(probe.findings)


def scan_legacy_stream(ctx: ScanContext, view: View, location: str, depth: int,
                       first: PickleResult) -> None:
    """The legacy format: magic, protocol, sys_info, the object, the storage keys, then for
    each key an 8-byte element count and the raw elements."""
    results = [first]
    pos = first.end
    for _ in range(4):
        r = walk(view.buf, pos, view.end, ctx, location, depth=depth, persistent_ok=True,
                 base=view.start)
        if not r.ok:
            report_malformed(ctx, r, location, view.start)
            return
        results.append(r)
        pos = r.end
    protocol = results[1].value
    if protocol != LEGACY_PROTOCOL:
        ctx.unparseable(location, f"legacy PyTorch protocol {protocol!r} is not 1001",
                        results[1].start - view.start)
    sizes: dict[str, int] = {}
    for pid in results[3].persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and \
                isinstance(pid[1], Global) and isinstance(pid[2], str):
            sizes[pid[2]] = ELEMENT_SIZE.get(pid[1].name, 0)
    keys = results[4].value
    if not isinstance(keys, ListV) or not all(isinstance(k, str) for k in keys.items):
        ctx.unparseable(location, "legacy PyTorch storage key list is not a list of names",
                        results[4].start - view.start)
        return
    for key in keys.items:
        assert isinstance(key, str)
        elem = sizes.get(key)
        raw = view.buf[pos : pos + 8]
        if len(raw) < 8 or not elem:
            ctx.unparseable(location, f"legacy PyTorch storage {key!r} cannot be located",
                            pos - view.start)
            return
        (numel,) = struct.unpack("<q", raw)
        pos += 8 + numel * elem
        if numel < 0 or pos > view.end:
            ctx.unparseable(location, f"legacy PyTorch storage {key!r} runs past the end",
                            pos - view.start)
            return
    if pos < view.end:
        rest = View(view.buf, pos, view.end)
        if looks_like_pickle(rest):
            ctx.add("pickle.trailing-data", Severity.MEDIUM,
                    "a further pickle follows the storages of a legacy PyTorch file", location,
                    pos - view.start)
            walk(view.buf, pos, view.end, ctx, location, depth=depth, base=view.start)
        else:
            ctx.add("pickle.trailing-data", Severity.LOW,
                    f"{view.end - pos} bytes after the last storage", location,
                    pos - view.start)


def scan_legacy_tar_member(ctx: ScanContext, view: View, location: str, name: str,  # noqa: PLR0911 -- one exit per record defect
                           depth: int) -> None:
    """Members of the tar format: ``pickle`` is one pickle; ``storages`` and ``tensors``
    interleave pickles with raw records, all read with the full unpickler."""
    if name == "pickle":
        r = walk(view.buf, view.start, view.end, ctx, location, depth=depth, persistent_ok=True)
        if not r.ok:
            report_malformed(ctx, r, location, view.start)
        return
    r = walk(view.buf, view.start, view.end, ctx, location, depth=depth)
    if not r.ok:
        report_malformed(ctx, r, location, view.start)
        return
    count = r.value
    pos = r.end
    if not isinstance(count, int) or count < 0:
        ctx.unparseable(location, f"{name}: record count is not a number")
        return
    for _ in range(min(count, ctx.limits.max_members)):
        r = walk(view.buf, pos, view.end, ctx, location, depth=depth, base=view.start)
        if not r.ok:
            report_malformed(ctx, r, location, view.start)
            return
        pos = r.end
        args = r.value
        if name == "storages":
            stype = args[2] if isinstance(args, tuple) and len(args) == 3 else None
            elem = ELEMENT_SIZE.get(stype.name, 0) if isinstance(stype, Global) else 0
            raw = view.buf[pos : pos + 8]
            if not elem or len(raw) < 8:
                ctx.unparseable(location, "storages: record cannot be located", pos - view.start)
                return
            (numel,) = struct.unpack("<q", raw)
            pos += 8 + max(0, numel) * elem
        else:
            raw = view.buf[pos : pos + 4]
            if len(raw) < 4:
                ctx.unparseable(location, "tensors: record truncated", pos - view.start)
                return
            (ndim,) = struct.unpack("<i", raw)
            pos += 8 + 16 * max(0, ndim) + 8
        if pos > view.end:
            ctx.unparseable(location, f"{name}: record runs past the end", pos - view.start)
            return
