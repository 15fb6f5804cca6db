"""A window onto bytes (a file's memory map or a decompressed member) read without copying.

Scanners pass views, not bytes, so a 1 GB checkpoint is mapped once and its tensor data is
only ever skipped over, never read into memory.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

RawBuffer = bytes | mmap.mmap


@dataclass(frozen=True)
class View:
    buf: RawBuffer
    start: int = 0
    end: int = -1

    def __post_init__(self) -> None:
        if self.end < 0:
            object.__setattr__(self, "end", len(self.buf))

    @classmethod
    def of(cls, data: bytes) -> View:
        return cls(data, 0, len(data))

    def __len__(self) -> int:
        return self.end - self.start

    def head(self, n: int) -> bytes:
        return bytes(self.buf[self.start : min(self.end, self.start + n)])

    def tail(self, n: int) -> bytes:
        return bytes(self.buf[max(self.start, self.end - n) : self.end])

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes at ``offset`` (relative); fewer when the view ends first."""
        a = self.start + offset
        return bytes(self.buf[a : min(self.end, a + n)])

    def sub(self, offset: int, n: int | None = None) -> View:
        a = self.start + offset
        b = self.end if n is None else min(self.end, a + n)
        return View(self.buf, a, max(a, b))

    def tobytes(self) -> bytes:
        if isinstance(self.buf, bytes) and self.start == 0 and self.end == len(self.buf):
            return self.buf
        return bytes(self.buf[self.start : self.end])

    def find(self, sub: bytes, offset: int = 0) -> int:
        """Relative position of ``sub`` at or after ``offset``, or -1."""
        pos = self.buf.find(sub, self.start + offset, self.end)
        return -1 if pos < 0 else pos - self.start
