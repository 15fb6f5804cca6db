"""State shared by the format scanners during one file's scan: findings, limits, nesting.

Format scanners never call each other directly: content found inside a container goes back
through :meth:`ScanContext.nested`, which sniffs it and picks the scanner, so every path
(archive member, bytes inside a pickle, decompressed stream) gets the same treatment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tsuba.models.scan.report import Finding, Severity
from tsuba.models.scan.view import View


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile file from exhausting memory or time."""

    max_depth: int = 8  # containers inside containers
    max_member_bytes: int = 1 << 31  # one decompressed member held in memory
    max_expanded_bytes: int = 1 << 34  # all decompressed content of one file
    max_ratio: int = 250  # decompressed / compressed size before it counts as a bomb
    max_members: int = 100_000  # entries in one archive
    max_container_items: int = 1_000_000  # items a simulated pickle list/dict keeps
    max_nested_pickle: int = 64 << 20  # bytes constants larger than this are not re-scanned


@dataclass
class ScanContext:
    """Findings and budgets for one top-level file."""

    path: str
    limits: Limits = field(default_factory=Limits)
    findings: list[Finding] = field(default_factory=list)
    expanded: int = 0
    formats: list[str] = field(default_factory=list)
    dispatch: Callable[[ScanContext, View, str, int], str] | None = None
    progress: Callable[[int], None] | None = None
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    def add(
        self,
        rule: str,
        severity: Severity,
        message: str,
        location: str,
        offset: int | None = None,
        **detail: str,
    ) -> None:
        self.findings.append(Finding(rule, severity, message, location, offset, detail))

    def add_once(  # noqa: PLR0917 -- mirrors Finding's fields
        self,
        key: str,
        rule: str,
        severity: Severity,
        message: str,
        location: str,
        offset: int | None = None,
        **detail: str,
    ) -> None:
        """Report one finding per (location, rule, key): a loop of one import is one finding."""
        mark = (location, rule, key)
        if mark in self._seen:
            return
        self._seen.add(mark)
        self.add(rule, severity, message, location, offset, **detail)

    def nested(self, data: View, location: str, depth: int) -> str:
        """Scan content found inside another file; returns the format it was taken for."""
        if depth > self.limits.max_depth:
            self.add(
                "archive.bomb",
                Severity.HIGH,
                f"nesting deeper than {self.limits.max_depth} containers; not scanned further",
                location,
            )
            return "too-deep"
        assert self.dispatch is not None
        return self.dispatch(self, data, location, depth)

    def charge(self, nbytes: int, location: str) -> bool:
        """Count decompressed bytes against the file's budget; False once it is spent."""
        self.expanded += nbytes
        if self.expanded > self.limits.max_expanded_bytes:
            self.add_once(
                "budget",
                "archive.bomb",
                Severity.HIGH,
                f"decompressed content exceeds {self.limits.max_expanded_bytes} bytes; "
                "the rest is not scanned",
                location,
            )
            return False
        return True

    def unparseable(self, location: str, message: str, offset: int | None = None,
                    rule: str = "format.unparseable",
                    severity: Severity = Severity.MEDIUM) -> None:
        self.add(rule, max(severity, Severity.MEDIUM), message, location, offset)
