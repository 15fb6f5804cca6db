"""A protobuf wire-format reader for ONNX and TensorFlow files, with no schema and no
framework: fields are read by number, and anything that does not decode is an error (the
scanner then reports the file as unparseable instead of passing it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tsuba.models.scan.view import View

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Field:
    number: int
    wire_type: int
    value: int  # varint / fixed value; for LEN the length
    start: int  # absolute offset of the payload (LEN) in the view's buffer
    end: int

    def view(self, parent: View) -> View:
        return View(parent.buf, self.start, self.end)

    def bytes(self, parent: View) -> bytes:
        return bytes(parent.buf[self.start : self.end])

    def text(self, parent: View) -> str:
        try:
            return self.bytes(parent).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("string field is not valid UTF-8", self.start) from None


def _varint(buf: bytes | object, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    b = buf  # bytes or mmap: both index to int
    while True:
        if pos >= end:
            raise WireError("truncated varint", pos)
        byte = b[pos]  # type: ignore[index]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes", pos)


def fields(view: View) -> Iterator[Field]:
    """Every field of one message, in order; raises WireError on anything malformed."""
    buf, pos, end = view.buf, view.start, view.end
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wt = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0", pos)
        if wt == VARINT:
            value, pos = _varint(buf, pos, end)
            yield Field(number, wt, value, pos, pos)
        elif wt == I64:
            if pos + 8 > end:
                raise WireError("truncated fixed64", pos)
            yield Field(number, wt, int.from_bytes(buf[pos : pos + 8], "little"), pos, pos + 8)
            pos += 8
        elif wt == I32:
            if pos + 4 > end:
                raise WireError("truncated fixed32", pos)
            yield Field(number, wt, int.from_bytes(buf[pos : pos + 4], "little"), pos, pos + 4)
            pos += 4
        elif wt == LEN:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError("length-delimited field runs past the end", pos)
            yield Field(number, wt, length, pos, pos + length)
            pos += length
        else:
            raise WireError(f"unsupported wire type {wt}", pos)


def by_number(view: View) -> dict[int, list[Field]]:
    out: dict[int, list[Field]] = {}
    for f in fields(view):
        out.setdefault(f.number, []).append(f)
    return out
