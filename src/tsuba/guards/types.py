"""The values every guard speaks: a finding in a text, and a scan's (sanitized, valid, risk).

Offsets are indices into the Python ``str`` (code points, end exclusive), so a finding can
be sliced out of the text it came from without re-encoding.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Finding:
    """One span a guard flagged, with what it is and why."""

    start: int
    end: int
    entity_type: str
    score: float
    recognizer: str
    explanation: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"finding span [{self.start}, {self.end}) is empty or negative")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Finding) -> bool:
        return self.start < other.end and other.start < self.end

    def as_dict(self, text: str | None = None) -> dict[str, object]:
        data: dict[str, object] = {
            "start": self.start,
            "end": self.end,
            "entity_type": self.entity_type,
            "score": round(self.score, 4),
            "recognizer": self.recognizer,
            "explanation": self.explanation,
        }
        if text is not None:
            data["text"] = text[self.start : self.end]
        return data


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What every scanner returns: the text made safe, whether it passes, and how risky it was.

    ``valid`` is False when the highest risk reached the scanner's threshold; ``risk`` is in
    [0, 1]; ``sanitized`` equals the input when the scanner does not rewrite text.
    """

    sanitized: str
    valid: bool
    risk: float
    findings: tuple[Finding, ...] = field(default=())

    def __iter__(self) -> Iterator[str | bool | float]:
        """Unpack as the (sanitized, valid, risk) triple."""
        return iter((self.sanitized, self.valid, self.risk))


def _rank(f: Finding) -> tuple[float, int, int, str, str]:
    # Higher score first, then the longer span, then the earlier one, then names: a total
    # order, so the same findings always resolve to the same result whatever their input order.
    return (-f.score, -f.length, f.start, f.entity_type, f.recognizer)


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Keep a non-overlapping subset, preferring higher scores, then longer spans.

    Identical spans of the same type are merged into the best-ranked one.  The result is
    sorted by position and does not depend on the order of the input.
    """
    starts: list[int] = []  # kept spans never overlap, so they sort by start and by end
    kept: list[Finding] = []
    for cand in sorted(findings, key=_rank):
        i = bisect.bisect_right(starts, cand.start)
        if i and kept[i - 1].end > cand.start:
            continue
        if i < len(kept) and kept[i].start < cand.end:
            continue
        starts.insert(i, cand.start)
        kept.insert(i, cand)
    return kept


def max_score(findings: Iterable[Finding]) -> float:
    return max((f.score for f in findings), default=0.0)
