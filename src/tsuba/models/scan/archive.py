"""Archives (zip, tar, compressed streams), read the way their loaders read them.

The zip reader is tsuba's own, because the published bypasses live in the gaps between
readers: PyTorch (miniz) trusts the central directory, ignores the encryption flag and does
not stop at a bad CRC; Python's zipfile refuses those files; streaming readers follow local
headers.  So tsuba takes entries from the central directory like the loaders, scans the data
that any of them would read, and reports every place where they would disagree (names,
flags, CRCs, duplicates, overlaps, data outside the directory) as a finding.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_METHODS = {0: "stored", 8: "deflate"}
_OTHER_METHODS = {9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd", 95: "xz", 99: "aes"}


@dataclass
class ZipEntry:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int = -1
    external_attr: int = 0
    create_system: int = 0
    index: int = 0

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and (self.external_attr >> 16) & 0o170000 == 0o120000


class ZipArchive:
    """A parsed zip: its entries and a way to read each one with findings recorded."""

    def __init__(self, ctx: ScanContext, view: View, location: str) -> None:
        self.ctx, self.view, self.location = ctx, view, location
        self.entries: list[ZipEntry] = []
        self.ok = False

    # -- parsing ----------------------------------------------------------------------------

    def parse(self) -> bool:  # noqa: PLR0911, PLR0912 -- one check per structure field
        """Read the central directory; False (with a finding) when the loaders could not."""
        ctx, view, loc = self.ctx, self.view, self.location
        size = len(view)
        tail_start = max(0, size - (22 + 0xFFFF))
        tail = view.read(tail_start, size - tail_start)
        at = tail.rfind(_EOCD)
        if at < 0 or at + 22 > len(tail):
            ctx.unparseable(loc, "zip end-of-central-directory record not found; loaders "
                            "refuse the file, streaming readers may not", rule="archive.malformed")
            self._local_only()
            return False
        eocd = tail_start + at
        (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len) = struct.unpack(
            "<4s4H2LH", tail[at : at + 22]
        )
        if eocd + 22 + comment_len != size:
            ctx.add("archive.parser-mismatch", Severity.LOW,
                    "zip comment length does not match the end of the file", loc, eocd)
        if disk or cd_disk or n_disk != n_total:
            ctx.unparseable(loc, "multi-disk zip archives are not supported by model loaders",
                            eocd, rule="archive.malformed")
            return False
        rec = view.read(eocd - 20, 20) if eocd >= 20 else b""
        if len(rec) == 20 and rec[:4] == _EOCD64_LOCATOR:  # zip64, as zipfile and miniz read it
            (_, _, off64, _) = struct.unpack("<4sLQL", rec)
            z64 = view.read(off64, 56)
            if len(z64) < 56 or z64[:4] != _EOCD64:
                ctx.unparseable(loc, "zip64 end record missing", off64,
                                rule="archive.malformed")
                return False
            (_, _, _, _, _, _, _, n_total, cd_size, cd_offset) = struct.unpack(
                "<4sQ2H2L4Q", z64
            )
            eocd = eocd - 20 - 56
        elif n_total == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
            ctx.unparseable(loc, "zip64 sizes without a zip64 end record", eocd,
                            rule="archive.malformed")
            return False
        prefix = eocd - cd_size - cd_offset
        if prefix < 0 or cd_offset + cd_size > eocd:
            ctx.unparseable(loc, "zip central directory lies outside the file", eocd,
                            rule="archive.malformed")
            return False
        if prefix > 0:
            ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                    f"{prefix} bytes precede the zip data; readers that do not adjust "
                    "offsets see a different file (a polyglot)", loc, 0)
        if n_total > ctx.limits.max_members:
            ctx.add("archive.bomb", Severity.HIGH,
                    f"zip declares {n_total} entries, over the limit "
                    f"{ctx.limits.max_members}", loc)
            return False
        pos = prefix + cd_offset
        for index in range(n_total):
            hdr = view.read(pos, 46)
            if len(hdr) < 46 or hdr[:4] != _CENTRAL:
                ctx.unparseable(loc, f"zip central directory entry {index} is corrupt", pos,
                                rule="archive.malformed")
                return False
            (_, _, made_by, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _,
             ext_attr, hoff) = struct.unpack("<4s2B5H3L5H2L", hdr)
            raw = view.read(pos + 46, nlen)
            extra = view.read(pos + 46 + nlen, xlen)
            if len(raw) < nlen or len(extra) < xlen:
                ctx.unparseable(loc, "zip central directory is truncated", pos,
                                rule="archive.malformed")
                return False
            usize, csize, hoff = _zip64(extra, usize, csize, hoff)
            name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            self.entries.append(ZipEntry(
                name=name, raw_name=raw, flags=flags, method=method, crc=crc,
                compressed_size=csize, size=usize, header_offset=hoff + prefix,
                external_attr=ext_attr, create_system=made_by, index=index,
            ))
            pos += 46 + nlen + xlen + clen
        if pos != prefix + cd_offset + cd_size:
            ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                    "zip central directory size does not match its entries", loc, pos)
        self._check_entries(prefix + cd_offset)
        self._hidden_local_entries(prefix, prefix + cd_offset)
        self.ok = True
        return True

    def _check_entries(self, cd_start: int) -> None:  # noqa: PLR0912 -- one check per header field
        ctx, view, loc = self.ctx, self.view, self.location
        seen: dict[str, int] = {}
        spans: list[tuple[int, int, str]] = []
        declared = 0
        for e in self.entries:
            where = f"{loc}!{e.name}"
            lh = view.read(e.header_offset, 30)
            if len(lh) < 30 or lh[:4] != _LOCAL:
                ctx.unparseable(where, "local header missing where the directory points",
                                e.header_offset, rule="archive.malformed")
                continue
            (_, _, lflags, lmethod, _, _, _, _, _, lnlen, lxlen) = struct.unpack(
                "<4s5H3L2H", lh
            )
            lname = view.read(e.header_offset + 30, lnlen)
            e.data_offset = e.header_offset + 30 + lnlen + lxlen
            if lname != e.raw_name:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        f"local header names {lname.decode('utf-8', 'replace')!r} but the "
                        f"directory names {e.name!r}; readers disagree on what this is",
                        where, e.header_offset)
            if lmethod != e.method or (lflags ^ e.flags) & 0x1:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        "local header and directory disagree on compression or encryption",
                        where, e.header_offset)
            if e.flags & 0x1 or e.flags & 0x40:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        "encryption flag set: Python's zipfile asks for a password while "
                        "PyTorch ignores the flag and reads the data as it is", where,
                        e.header_offset)
            if e.flags & 0x20:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        "compressed-patched-data flag set: some readers refuse the entry, "
                        "others read it", where, e.header_offset)
            if e.name in seen:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        f"duplicate entry name {e.name!r}: readers pick different copies",
                        where, e.header_offset)
            seen[e.name] = e.index
            _check_name(ctx, e.name, where, e.header_offset)
            if e.is_symlink:
                ctx.add("archive.link", Severity.HIGH,
                        "entry is a symbolic link; extracting it can point outside the folder",
                        where, e.header_offset)
            if e.data_offset + e.compressed_size > cd_start:
                ctx.unparseable(where, "entry data runs into the central directory",
                                e.header_offset, rule="archive.malformed")
            if e.method not in _METHODS:
                method = _OTHER_METHODS.get(e.method, f"method {e.method}")
                ctx.add("archive.unsupported", Severity.MEDIUM,
                        f"compression {method} is not read by model loaders or by tsuba; "
                        "content not scanned", where, e.header_offset)
            if e.method == 0 and e.size != e.compressed_size:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        "stored entry with different sizes in the directory", where,
                        e.header_offset)
            if e.method == 8 and e.compressed_size and \
                    e.size > 1 << 20 and e.size / e.compressed_size > ctx.limits.max_ratio:
                ctx.add("archive.bomb", Severity.HIGH,
                        f"entry expands {e.size // max(1, e.compressed_size)}x "
                        f"({e.size} bytes); not decompressed", where, e.header_offset)
            declared += e.size
            spans.append((e.header_offset, e.data_offset + e.compressed_size, e.name))
        spans.sort()
        for (_a0, a1, an), (b0, _b1, bn) in itertools.pairwise(spans):
            if b0 < a1:
                ctx.add("archive.bomb", Severity.HIGH,
                        f"entries {an!r} and {bn!r} overlap (a zip bomb reuses data this way)",
                        loc, b0)
                break
        if declared > ctx.limits.max_expanded_bytes:
            ctx.add("archive.bomb", Severity.HIGH,
                    f"zip declares {declared} bytes of content, over the limit", loc)

    def _hidden_local_entries(self, start: int, cd_start: int) -> None:
        """Local headers that no directory entry points at, in the gaps between entries:
        streaming readers see an entry there that the others do not.  Entry data is not
        searched, so the cost does not grow with the size of the weights."""
        known = sorted((e.header_offset, max(e.data_offset, e.header_offset + 30)
                        + e.compressed_size) for e in self.entries if e.data_offset >= 0)
        gaps, cursor = [], start
        for head, end in known:
            if head > cursor:
                gaps.append((cursor, head))
            cursor = max(cursor, end)
        if cd_start > cursor:
            gaps.append((cursor, cd_start))
        for a, b in gaps:
            pos = self.view.find(_LOCAL, a)
            if 0 <= pos < b:
                self.ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                             "local file header outside the central directory: streaming "
                             "readers see an entry the others do not", self.location, pos)
                return

    def _local_only(self) -> None:
        """No directory: list entries from local headers so their data is still scanned."""
        view, pos = self.view, 0
        while len(self.entries) < self.ctx.limits.max_members:
            lh = view.read(pos, 30)
            if len(lh) < 30 or lh[:4] != _LOCAL:
                return
            (_, _, flags, method, _, _, crc, csize, usize, nlen, xlen) = struct.unpack(
                "<4s5H3L2H", lh
            )
            raw = view.read(pos + 30, nlen)
            e = ZipEntry(raw.decode("utf-8", "replace"), raw, flags, method, crc, csize, usize,
                         pos, pos + 30 + nlen + xlen, index=len(self.entries))
            if flags & 0x8 or e.data_offset + csize > len(view):
                return
            self.entries.append(e)
            pos = e.data_offset + csize

    # -- reading ----------------------------------------------------------------------------

    def read(self, e: ZipEntry, *, limit: int | None = None, verify: bool = True) -> View | None:
        """The entry's content (decompressed), or None with a finding."""
        ctx, where = self.ctx, f"{self.location}!{e.name}"
        if e.data_offset < 0 or e.method not in _METHODS:
            return None
        if e.data_offset > len(self.view):
            ctx.unparseable(where, "entry data starts past the end of the file",
                            e.header_offset, rule="archive.malformed")
            return None
        end = e.data_offset + e.compressed_size
        if end > len(self.view):
            ctx.unparseable(where, "entry data runs past the end of the file",
                            e.header_offset, rule="archive.malformed")
            end = len(self.view)
        raw = View(self.view.buf, self.view.start + e.data_offset, self.view.start + end)
        cap = min(limit or ctx.limits.max_member_bytes, ctx.limits.max_member_bytes)
        if e.method == 0:
            data = raw if limit is None else raw.sub(0, limit)
        else:
            if e.size > 1 << 20 and e.compressed_size and \
                    e.size / e.compressed_size > ctx.limits.max_ratio:
                return None  # reported as a bomb
            out = _inflate(raw, cap)
            if out is None:
                ctx.unparseable(where, "deflate data is corrupt", e.header_offset,
                                rule="archive.malformed")
                return None
            if limit is None and not ctx.charge(len(out), where):
                return None
            data = View.of(out)
            if limit is None and len(out) != e.size:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        f"entry inflates to {len(out)} bytes, the directory says {e.size}",
                        where, e.header_offset)
        if verify and limit is None and not e.flags & 0x1:
            crc = _crc(data)
            if crc != e.crc:
                ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                        "CRC mismatch: Python's zipfile refuses this entry while PyTorch loads "
                        "it; scanned as PyTorch would read it", where, e.header_offset)
        return data


def _crc(view: View) -> int:
    crc, pos, step = 0, view.start, 16 << 20
    while pos < view.end:
        crc = zlib.crc32(view.buf[pos : min(view.end, pos + step)], crc)
        pos += step
    return crc


def _zip64(extra: bytes, usize: int, csize: int, hoff: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + ln]
        if tag == 1:
            vals = [struct.unpack("<Q", body[i : i + 8])[0] for i in range(0, len(body) - 7, 8)]
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if hoff == 0xFFFFFFFF:
                hoff = next(it, hoff)
        pos += 4 + ln
    return usize, csize, hoff


def _check_name(ctx: ScanContext, name: str, where: str, offset: int) -> None:
    norm = name.replace("\\", "/")
    parts = norm.split("/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in parts:
        ctx.add("archive.path-traversal", Severity.HIGH,
                f"entry name {name!r} escapes the extraction folder", where, offset)
    elif "\x00" in name:
        ctx.add("archive.parser-mismatch", Severity.MEDIUM,
                "entry name contains a NUL byte; readers cut it at different places",
                where, offset)


def _inflate(raw: View, cap: int) -> bytes | None:
    d = zlib.decompressobj(-15)
    out = bytearray()
    pos, step = raw.start, 4 << 20
    try:
        while pos < raw.end and len(out) <= cap:
            chunk = raw.buf[pos : min(raw.end, pos + step)]
            pos += step
            out += d.decompress(chunk, cap + 1 - len(out))
            while d.unconsumed_tail and len(out) <= cap:
                out += d.decompress(d.unconsumed_tail, cap + 1 - len(out))
    except zlib.error:
        return None
    return bytes(out[:cap]) if len(out) > cap else bytes(out)


# -- scanners ---------------------------------------------------------------------------------

MemberScanner = Callable[[ScanContext, View, str, int], None]


def scan_zip(ctx: ScanContext, view: View, location: str, depth: int) -> str:
    """Generic zip: every member is sniffed and scanned.  Zips that a framework writes
    (PyTorch, numpy .npz, Keras) get their own checks on top."""
    from tsuba.models.scan import keras, torch  # noqa: PLC0415 (they import this module)

    archive = ZipArchive(ctx, view, location)
    archive.parse()
    names = [e.name for e in archive.entries]
    if torch.is_torch_zip(names):
        torch.scan_torch_zip(ctx, archive, depth)
        return "pytorch-zip"
    if keras.is_keras_zip(names):
        keras.scan_keras_zip(ctx, archive, depth)
        return "keras"
    kind = "npz" if names and all(n.endswith(".npy") for n in names) else "zip"
    scan_members(ctx, archive, depth)
    return kind


def scan_members(ctx: ScanContext, archive: ZipArchive, depth: int,
                 skip: Callable[[ZipEntry], bool] | None = None) -> None:
    for e in archive.entries:
        if e.is_dir or e.is_symlink or (skip is not None and skip(e)):
            continue
        data = archive.read(e)
        if data is not None:
            ctx.nested(data, f"{archive.location}!{e.name}", depth + 1)


def scan_tar(ctx: ScanContext, view: View, location: str, depth: int) -> str:  # noqa: PLR0912 -- one check per member kind
    import io  # noqa: PLC0415

    raw = view.tobytes() if len(view) <= ctx.limits.max_member_bytes else None
    if raw is None:
        ctx.unparseable(location, "tar archive too large to scan", rule="archive.unsupported")
        return "tar"
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")  # noqa: SIM115
    except (tarfile.TarError, EOFError) as exc:
        ctx.unparseable(location, f"tar archive is corrupt: {exc}", rule="archive.malformed")
        return "tar"
    with tar:
        members = []
        try:
            for count, m in enumerate(tar):
                if count >= ctx.limits.max_members:
                    ctx.add("archive.bomb", Severity.HIGH, "tar has too many members", location)
                    break
                members.append(m)
        except (tarfile.TarError, EOFError) as exc:
            ctx.unparseable(location, f"tar archive is corrupt: {exc}", rule="archive.malformed")
        names = [m.name for m in members]
        from tsuba.models.scan import torch  # noqa: PLC0415

        if torch.is_torch_tar(names):
            ctx.add("torch.legacy-tar", Severity.INFO,
                    "PyTorch legacy tar checkpoint: its pickles are scanned", location)
        for m in members:
            where = f"{location}!{m.name}"
            _check_name(ctx, m.name, where, m.offset)
            if m.issym() or m.islnk():
                ctx.add("archive.link", Severity.HIGH,
                        f"link to {m.linkname!r}; extracting it can reach outside the folder",
                        where, m.offset)
                _check_name(ctx, m.linkname, where, m.offset)
                continue
            if m.isdev() or m.isfifo():
                ctx.add("archive.link", Severity.HIGH, "device or fifo entry", where, m.offset)
                continue
            if not m.isfile():
                continue
            if m.offset_data + m.size > len(raw):
                ctx.unparseable(where, "tar member runs past the end", m.offset,
                                rule="archive.malformed")
                continue
            member = View(raw, m.offset_data, m.offset_data + m.size)
            if torch.is_torch_tar(names) and m.name in ("storages", "tensors", "pickle"):
                torch.scan_legacy_tar_member(ctx, member, where, m.name, depth + 1)
            else:
                ctx.nested(member, where, depth + 1)
    return "tar"


def scan_compressed(ctx: ScanContext, view: View, location: str, depth: int, kind: str) -> str:
    """A single compressed stream (joblib's compress=, .gz, .xz ...): inflate with a bound on
    size and ratio, then scan what comes out."""
    cap = min(ctx.limits.max_member_bytes,
              max(1 << 20, len(view) * ctx.limits.max_ratio))
    where = f"{location}!{kind}"
    try:
        out = _decompress(view, kind, cap)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        ctx.unparseable(location, f"{kind} stream is corrupt: {exc}", rule="archive.malformed")
        return kind
    if len(out) > cap - 1:
        ctx.add("archive.bomb", Severity.HIGH,
                f"{kind} stream expands past {cap} bytes ({ctx.limits.max_ratio}x its size); "
                "only the start is scanned", location)
        out = out[: cap - 1]
    if not ctx.charge(len(out), location):
        return kind
    ctx.nested(View.of(out), where, depth + 1)
    return kind


def _decompress(view: View, kind: str, cap: int) -> bytes:
    if kind in ("gzip", "zlib"):
        return _stream(zlib.decompressobj(31 if kind == "gzip" else 15), view, cap)
    if kind == "bzip2":
        return _stream(bz2.BZ2Decompressor(), view, cap)
    if kind == "xz":
        return _stream(lzma.LZMADecompressor(format=lzma.FORMAT_XZ), view, cap)
    if kind == "lzma":
        return _stream(lzma.LZMADecompressor(format=lzma.FORMAT_ALONE), view, cap)
    raise ValueError(f"unknown stream {kind}")


def _stream(d: Any, view: View, cap: int) -> bytes:
    out = bytearray()
    pos, step = view.start, 1 << 20
    while pos < view.end and len(out) < cap:
        chunk = bytes(view.buf[pos : min(view.end, pos + step)])
        pos += step
        if hasattr(d, "unconsumed_tail"):  # zlib
            out += d.decompress(chunk, cap - len(out))
            while d.unconsumed_tail and len(out) < cap:
                out += d.decompress(d.unconsumed_tail, cap - len(out))
        else:
            out += d.decompress(chunk, max_length=cap - len(out))
            while not d.needs_input and not d.eof and len(out) < cap:
                out += d.decompress(b"", max_length=cap - len(out))
        if getattr(d, "eof", False):
            break
    return bytes(out)

