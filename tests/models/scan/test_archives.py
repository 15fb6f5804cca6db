"""Archives: traversal, links, bombs, nesting, odd flags and reader disagreements."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_builders import (
    call,
    deflate_bomb,
    rename_local,
    set_flag,
    torch_like_zip,
    zip_bytes,
    zlib_bomb,
)

from tsuba.models.scan import Limits, Severity, scan_bytes

EVIL = call("os", "system", "id")


def rules(data: bytes, name: str = "a.zip", limits: Limits | None = None) -> set[str]:
    return {f.rule for f in scan_bytes(data, name, limits=limits).findings}


def test_clean_zip_of_benign_members() -> None:
    data = zip_bytes({"a.txt": b"hello", "b/c.json": b"{}"}, compress=True)
    assert scan_bytes(data, "a.zip").max_severity is None


def test_nested_archives_are_scanned_to_the_bottom() -> None:
    inner = zip_bytes({"deep/model.bin": EVIL}, compress=True)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as t:
        info = tarfile.TarInfo("inner.zip")
        info.size = len(inner)
        t.addfile(info, io.BytesIO(inner))
    outer = zip_bytes({"x.tar.gz": tar.getvalue()})
    result = scan_bytes(outer, "outer.zip")
    assert result.max_severity is Severity.CRITICAL
    crit = next(f for f in result.findings if f.severity is Severity.CRITICAL)
    assert crit.location.endswith("!x.tar.gz!gzip!inner.zip!deep/model.bin")


def test_nesting_beyond_the_limit_is_high() -> None:
    data = EVIL
    for i in range(6):
        data = zip_bytes({f"l{i}.zip": data})
    found = scan_bytes(data, "a.zip", limits=Limits(max_depth=3))
    assert "archive.bomb" in {f.rule for f in found.findings}


def test_path_traversal_and_links() -> None:
    assert "archive.path-traversal" in rules(zip_bytes({"../../etc/cron.d/x": b"x"}))
    assert "archive.path-traversal" in rules(zip_bytes({"/abs/path": b"x"}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    assert "archive.link" in rules(buf.getvalue())
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as t:
        sym = tarfile.TarInfo("weights.bin")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/shadow"
        t.addfile(sym)
    assert "archive.link" in rules(tbuf.getvalue(), "a.tar")


def test_zip_bombs() -> None:
    assert "archive.bomb" in rules(deflate_bomb(64 << 20))
    found = scan_bytes(zlib_bomb(64 << 20), "m.joblib", limits=Limits(max_ratio=50))
    assert "archive.bomb" in {f.rule for f in found.findings}
    # overlapping entries: two directory entries point at the same local header
    data = bytearray(zip_bytes({"a": b"x" * 100, "b": b"y" * 100}))
    cd = data.find(b"PK\x01\x02")
    cd2 = data.find(b"PK\x01\x02", cd + 4)
    struct.pack_into("<I", data, cd2 + 42, struct.unpack_from("<I", data, cd + 42)[0])
    assert {"archive.bomb", "archive.parser-mismatch"} & rules(bytes(data))


def test_compressed_streams_are_opened() -> None:
    for pack in (gzip.compress, bz2.compress, lzma.compress,
                 lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE)):
        assert scan_bytes(pack(EVIL), "m.joblib").max_severity is Severity.CRITICAL


def test_reader_disagreements_are_findings_and_the_data_is_still_scanned() -> None:
    base = torch_like_zip(EVIL)
    for data in (rename_local(base, b"archive/data.pkl", b"archive/datap.kl"),
                 set_flag(base, b"archive/data.pkl", 0x1),
                 set_flag(base, b"archive/data.pkl", 0x20)):
        found = scan_bytes(data, "model.pt")
        assert "archive.parser-mismatch" in {f.rule for f in found.findings}
        assert found.max_severity is Severity.CRITICAL
    dup = io.BytesIO()
    with zipfile.ZipFile(dup, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02N.")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z.writestr("archive/data.pkl", EVIL)
    found = scan_bytes(dup.getvalue(), "model.pt")
    assert "archive.parser-mismatch" in {f.rule for f in found.findings}
    assert found.max_severity is Severity.CRITICAL


def test_prepended_data_and_hidden_local_entries() -> None:
    polyglot = EVIL + zip_bytes({"a.txt": b"x"})
    found = scan_bytes(polyglot, "model.bin")
    assert found.max_severity is Severity.CRITICAL  # read as the pickle it starts with
    hidden = bytearray(zip_bytes({"a.txt": b"x"}))
    local = zip_bytes({"b.pkl": EVIL})
    entry = local[: local.find(b"PK\x01\x02")]
    cd = hidden.find(b"PK\x01\x02")
    shifted = bytes(hidden[:cd]) + entry
    offset = len(entry)
    rest = bytearray(hidden[cd:])
    eocd = rest.find(b"PK\x05\x06")
    struct.pack_into("<I", rest, eocd + 16, struct.unpack_from("<I", rest, eocd + 16)[0] + offset)
    assert "archive.parser-mismatch" in rules(shifted + bytes(rest))


def test_truncated_and_corrupt_zips_are_findings() -> None:
    data = zip_bytes({"archive/data.pkl": b"\x80\x02N.", "b": b"x" * 500}, compress=True)
    for cut in (10, 40, len(data) // 2, len(data) - 30, len(data) - 1):
        found = scan_bytes(data[:cut], "a.zip")
        assert found.max_severity is not None and found.max_severity >= Severity.MEDIUM, cut
    assert "archive.unsupported" in rules(b"7z\xbc\xaf\x27\x1c" + b"\0" * 30, "m.7z")
    assert "archive.unsupported" in rules(b"Rar!\x1a\x07\x00" + b"\0" * 30, "m.rar")


def test_unsupported_compression_method_is_medium() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("data.pkl", EVIL)
    assert "archive.unsupported" in rules(buf.getvalue())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_fuzz_corrupted_zips_never_crash(flips: list[tuple[int, int]]) -> None:
    data = bytearray(torch_like_zip(EVIL))
    for pos, value in flips:
        data[pos % len(data)] = value
    found = scan_bytes(bytes(data), "model.pt")
    assert all(f.rule != "scanner.error" for f in found.findings)
    assert found.max_severity is not None  # a zip around a payload is never clean
