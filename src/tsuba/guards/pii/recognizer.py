"""Recognizers: a pattern finds candidates, a validator confirms them, context adjusts the score.

Context words near a candidate raise its score (a nine-digit number after "passport" is
likely a passport number); negative context words lower it ("version", "order", "commit").
A recognizer marked ``context_required`` reports nothing without a context word, which is
how weak formats (nine bare digits) avoid flagging every order id.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tsuba.guards.types import Finding

Validator = Callable[[str], bool]

CONTEXT_BEFORE = 48  # characters of context read before a candidate
CONTEXT_AFTER = 24  # and after it
CONTEXT_BOOST = 0.35
NEGATIVE_PENALTY = 0.45

# Words that say a number or token is machine data, not a person's: shared by every recognizer.
NEGATIVE_CONTEXT = (
    "version",
    "v.",
    "build",
    "release",
    "commit",
    "sha",
    "hash",
    "checksum",
    "digest",
    "uuid",
    "guid",
    "order",
    "invoice",
    "ticket",
    "tracking",
    "request id",
    "trace",
    "span",
    "pid",
    "port",
    "bytes",
    "kb",
    "mb",
    "gb",
    "sku",
    "serial",
    "isbn",
)


class Recognizer(Protocol):
    """Anything that finds entities in a text."""

    @property
    def name(self) -> str: ...

    @property
    def entities(self) -> tuple[str, ...]: ...

    @property
    def languages(self) -> frozenset[str] | None:  # None: every language
        ...

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]: ...


class TextContext:
    """Per-call state shared by recognizers: the lower-cased text and cached gate results."""

    __slots__ = ("_gates", "_lengths", "_runs", "language", "lower", "text")

    def __init__(self, text: str, language: str) -> None:
        self.text = text
        self.lower = text.lower()
        self.language = language
        self._gates: dict[tuple[bool, re.Pattern[str]], bool] = {}
        self._runs: tuple[int, int] | None = None
        self._lengths: frozenset[int] = frozenset()

    def digits(self) -> tuple[int, int]:
        """(digits in the text, longest run of consecutive digits): gates numeric formats."""
        if self._runs is None:
            runs = [len(r) for r in _DIGIT_RUN.findall(self.text)]
            self._runs = (sum(runs), max(runs, default=0))
            self._lengths = frozenset(runs)
        return self._runs

    def run_lengths(self) -> frozenset[int]:
        """Lengths of the maximal runs of ASCII digits in the text."""
        if self._runs is None:
            self.digits()
        return self._lengths

    def gate(self, pattern: re.Pattern[str], *, lower: bool = False) -> bool:
        """Whether ``pattern`` occurs anywhere in the (lower-cased) text, once per call."""
        key = (lower, pattern)  # a compiled pattern hashes by its source, whose hash is kept
        hit = self._gates.get(key)
        if hit is None:
            hit = pattern.search(self.lower if lower else self.text) is not None
            self._gates[key] = hit
        return hit

    def window(self, start: int, end: int) -> str:
        return self.lower[max(0, start - CONTEXT_BEFORE) : end + CONTEXT_AFTER]

    def before(self, start: int, size: int = CONTEXT_BEFORE) -> str:
        return self.lower[max(0, start - size) : start]


def words_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """One alternation matching any of ``words`` as whole words (case-folded)."""
    cleaned = sorted({w.lower() for w in words if w}, key=len, reverse=True)
    if not cleaned:
        return None
    # Scripts written without spaces (Japanese) have no word edges to require.
    spaced = [re.escape(w) for w in cleaned if not _UNSPACED.search(w)]
    unspaced = [re.escape(w) for w in cleaned if _UNSPACED.search(w)]
    parts = []
    if spaced:
        parts.append(rf"(?<!\w)(?:{'|'.join(spaced)})(?!\w)")
    if unspaced:
        parts.append(f"(?:{'|'.join(unspaced)})")
    return re.compile("|".join(parts))


_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def substrings_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """Any of ``words`` (lower-cased) anywhere, edges or not: a superset of ``words_pattern``
    on every slice of the lower-cased text, so its absence rules the words out."""
    cleaned = sorted({w.lower() for w in words if w}, key=len, reverse=True)
    if not cleaned:
        return None
    return re.compile("|".join(re.escape(w) for w in cleaned))


_NEGATIVE = words_pattern(NEGATIVE_CONTEXT)
_DIGIT_RUN = re.compile(r"[0-9]+")


@dataclass
class PatternRecognizer:
    """A regular expression, an optional validator and context words for one entity type.

    ``group`` selects the capture group that is the entity; ``gate`` is a cheap pattern that
    must occur in the text before the main pattern runs at all.
    """

    name: str
    entity: str
    pattern: str
    score: float
    validator: Validator | None = None
    context: Sequence[str] = ()
    context_required: bool = False
    languages: frozenset[str] | None = None
    group: int = 0
    flags: int = 0
    gate: str | None = None
    negative_context: bool = True
    explanation: str = ""
    normalize: Callable[[str], str] | None = None
    min_digits: int = 0  # a match holds at least this many digits...
    min_run: int = 0  # ...and at least this many in a row: texts without are skipped
    shrink: bool = False  # on a failed check, retry without trailing space-separated groups
    # Every match holds a maximal digit run of one of these lengths (bare fixed-length
    # numbers between word edges): texts without such a run are skipped.
    runs: frozenset[int] | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _gate: re.Pattern[str] | None = field(init=False, repr=False)
    _context: re.Pattern[str] | None = field(init=False, repr=False)
    _context_any: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern, self.flags)
        self._gate = re.compile(self.gate) if self.gate else None
        self._context = words_pattern(self.context)
        self._context_any = substrings_pattern(self.context)

    @property
    def entities(self) -> tuple[str, ...]:
        return (self.entity,)

    def silent(self, ctx: TextContext, threshold: float) -> bool:
        """True when nothing this recognizer finds in the text can reach ``threshold``.

        The cheap preconditions first (digit-run lengths, the gate); then, since without a
        context word a finding scores ``score`` at most (negative context only lowers it), a
        weak format with no context word anywhere in the text is skipped before its pattern
        runs.
        """
        if self.runs is not None and self.runs.isdisjoint(ctx.run_lengths()):
            return True
        if self._gate is not None and not ctx.gate(self._gate):
            return True
        if self.score >= threshold and not self.context_required:
            return False
        return self._context_any is None or not ctx.gate(self._context_any, lower=True)

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        if self.min_digits or self.min_run:
            total, run = ctx.digits()
            if total < self.min_digits or run < self.min_run:
                return
        if self.runs is not None and self.runs.isdisjoint(ctx.run_lengths()):
            return
        if self._gate is not None and not ctx.gate(self._gate):
            return
        yield from self.scan(text, ctx)

    def scan(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        """``analyze`` without its preconditions, for a caller that has checked them (the
        analyzer: digit counts per text shape, the rest in ``silent``)."""
        for match in self._regex.finditer(text):
            start, end = match.span(self.group)
            if start == end:
                continue
            value = match.group(self.group)
            if self.validator is not None:
                value = self._validated(value)
                if value is None:
                    continue
                end = start + len(value)
            finding = self.score_candidate(ctx, start, end)
            if finding is not None:
                yield finding

    def _validated(self, value: str) -> str | None:
        """``value``, or its longest valid prefix ending before a space when ``shrink``."""
        assert self.validator is not None
        while True:
            candidate = self.normalize(value) if self.normalize else value
            if self.validator(candidate):
                return value
            cut = value.rfind(" ") if self.shrink else -1
            if cut <= 0:
                return None
            value = value[:cut]

    def score_candidate(self, ctx: TextContext, start: int, end: int) -> Finding | None:
        score = self.score
        why = [self.explanation or f"matched {self.name}"]
        window = ctx.window(start, end) if (self._context or self.negative_context) else ""
        has_context = self._context is not None and self._context.search(window) is not None
        if has_context:
            score += CONTEXT_BOOST
            why.append("context word nearby")
        elif self.context_required:
            return None
        if (
            self.negative_context
            and not has_context
            and _NEGATIVE is not None
            and _NEGATIVE.search(ctx.before(start, 24))
        ):
            score -= NEGATIVE_PENALTY
            why.append("machine-data word nearby")
        if score <= 0:
            return None
        return Finding(start, end, self.entity, min(score, 1.0), self.name, "; ".join(why))
