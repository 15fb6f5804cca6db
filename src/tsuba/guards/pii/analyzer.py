"""The analyzer: runs the registry of recognizers, applies lists, resolves overlaps.

The registry is plain data (a list of recognizers) so configuration can add, remove or
replace one without a factory ladder; custom recognizers come from dictionaries that name a
pattern, a validator from an allow-list (python-stdnum modules, Luhn, IP) and context words.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tsuba.core.errors import ConfigError
from tsuba.guards.pii.address import AddressRecognizer
from tsuba.guards.pii.dates import DateRecognizer
from tsuba.guards.pii.names import NameRecognizer
from tsuba.guards.pii.national import national_recognizers
from tsuba.guards.pii.patterns import structured_recognizers, valid_card, valid_ipv4, valid_ipv6
from tsuba.guards.pii.phone import PhoneRecognizer
from tsuba.guards.pii.recognizer import PatternRecognizer, Recognizer, TextContext
from tsuba.guards.types import Finding, resolve_overlaps

LANGUAGES = frozenset({"en", "de", "fr", "es", "ja", "it", "nl", "pt"})
DEFAULT_MIN_SCORE = 0.5
MAX_CUSTOM_PATTERN = 1000

_BUILTIN_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": lambda v: _stdnum("luhn")("".join(c for c in v if c.isdigit())),
    "credit_card": valid_card,
    "ipv4": valid_ipv4,
    "ipv6": valid_ipv6,
}


def _stdnum(module: str) -> Callable[[str], bool]:
    if not re.fullmatch(r"[a-z]{2,3}(?:\.[a-z_]{2,30})?|[a-z_]{2,30}", module):
        raise ConfigError(f"validator 'stdnum.{module}' is not a python-stdnum module name")
    try:
        mod = importlib.import_module(f"stdnum.{module}")
    except ImportError:
        raise ConfigError(f"validator 'stdnum.{module}' does not exist in python-stdnum") from None
    is_valid = getattr(mod, "is_valid", None)
    if not callable(is_valid):
        raise ConfigError(f"python-stdnum module '{module}' has no is_valid")
    return is_valid  # type: ignore[no-any-return]


def resolve_validator(name: str) -> Callable[[str], bool]:
    """A validator by name: 'luhn', 'credit_card', 'ipv4', 'ipv6' or 'stdnum.<module>'."""
    if name in _BUILTIN_VALIDATORS:
        return _BUILTIN_VALIDATORS[name]
    if name.startswith("stdnum."):
        return _stdnum(name.removeprefix("stdnum."))
    raise ConfigError(
        f"unknown validator '{name}': use luhn, credit_card, ipv4, ipv6 or stdnum.<module>"
    )


def recognizer_from_config(spec: Mapping[str, Any]) -> PatternRecognizer:
    """A custom recognizer from configuration; ConfigError naming the bad field."""
    try:
        entity = str(spec["entity"])
        pattern = str(spec["pattern"])
    except KeyError as exc:
        raise ConfigError(f"custom recognizer needs '{exc.args[0]}'") from None
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", entity):
        raise ConfigError(f"custom recognizer entity '{entity}' must be UPPER_SNAKE_CASE")
    if not pattern or len(pattern) > MAX_CUSTOM_PATTERN:
        raise ConfigError(f"custom recognizer '{entity}': pattern must be 1..1000 characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"custom recognizer '{entity}': bad pattern: {exc}") from None
    score = float(spec.get("score", 0.6))
    if not 0.0 < score <= 1.0:
        raise ConfigError(f"custom recognizer '{entity}': score must be in (0, 1]")
    validator = spec.get("validator")
    context = spec.get("context", ())
    if isinstance(context, str) or not all(isinstance(c, str) for c in context):
        raise ConfigError(f"custom recognizer '{entity}': context must be a list of words")
    languages = spec.get("languages")
    return PatternRecognizer(
        name=str(spec.get("name", entity.lower())),
        entity=entity,
        pattern=pattern,
        score=score,
        validator=resolve_validator(str(validator)) if validator else None,
        context=tuple(context),
        context_required=bool(spec.get("context_required", False)),
        languages=frozenset(languages) if languages else None,
        explanation=str(spec.get("explanation", f"custom recognizer {entity}")),
        flags=re.IGNORECASE if spec.get("ignore_case") else 0,
    )


def default_recognizers() -> list[Recognizer]:
    recognizers: list[Recognizer] = [
        *structured_recognizers(),
        *national_recognizers(),
        PhoneRecognizer(),
        DateRecognizer(),
        AddressRecognizer(),
        NameRecognizer(),
    ]
    return recognizers


@dataclass
class Analyzer:
    """A registry of recognizers with allow and deny lists.

    ``deny`` maps an entity type to terms always reported as that type; ``allow`` holds
    values (exact, case-insensitive) never reported, such as a company's own support address.
    """

    recognizers: list[Recognizer] = field(default_factory=default_recognizers)
    allow: Sequence[str] = ()
    deny: Mapping[str, Sequence[str]] = field(default_factory=dict)
    min_score: float = DEFAULT_MIN_SCORE
    _allow: frozenset[str] = field(init=False, repr=False)
    _deny: list[tuple[str, re.Pattern[str]]] = field(init=False, repr=False)
    _registry: list[Recognizer] = field(init=False, repr=False, default_factory=list)
    _plan: list[_Step] = field(init=False, repr=False, default_factory=list)
    _chosen: dict[_Shape, list[_Step]] = field(init=False, repr=False, default_factory=dict)
    _limits: tuple[int, int, frozenset[int]] = field(
        init=False, repr=False, default=(0, 0, frozenset())
    )

    def __post_init__(self) -> None:
        self._allow = frozenset(a.casefold() for a in self.allow)
        self._deny = []
        for entity, terms in self.deny.items():
            cleaned = sorted({t for t in terms if t}, key=len, reverse=True)
            if cleaned:
                alts = "|".join(re.escape(t) for t in cleaned)
                self._deny.append((entity, re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.I)))

    def _steps(self) -> list[_Step]:
        """The registry with each recognizer's cheap preconditions, rebuilt when it changed."""
        if self._registry != self.recognizers:
            self._registry = list(self.recognizers)
            self._plan = [_Step.of(r) for r in self._registry]
            self._chosen = {}
            self._limits = (
                max((s.min_digits for s in self._plan), default=0),
                max((s.min_run for s in self._plan), default=0),
                frozenset().union(*(s.runs for s in self._plan if s.runs is not None)),
            )
        return self._plan

    def _applicable(
        self, ctx: TextContext, language: str, wanted: frozenset[str] | None
    ) -> list[_Step]:
        """The steps whose digit, language and entity preconditions the text meets.

        Those preconditions read only a few numbers about the text, so the surviving list is
        kept per distinct shape (counts clipped to where no step tells them apart) and most
        texts skip the per-recognizer checks altogether.
        """
        steps = self._steps()
        digits, run = ctx.digits()
        max_digits, max_run, lengths_seen = self._limits
        shape = (
            min(digits, max_digits),
            min(run, max_run),
            ctx.run_lengths() & lengths_seen,
            language,
            wanted,
        )
        chosen = self._chosen.get(shape)
        if chosen is None:
            chosen = [
                step
                for step in steps
                if not (
                    step.min_digits > digits
                    or step.min_run > run
                    or (step.runs is not None and step.runs.isdisjoint(shape[2]))
                    or (step.recognizer.languages is not None
                        and language not in step.recognizer.languages)
                    or (wanted is not None and wanted.isdisjoint(step.recognizer.entities))
                )
            ]
            if len(self._chosen) >= MAX_SHAPES:
                self._chosen = {}
            self._chosen[shape] = chosen
        return chosen

    def add(self, recognizer: Recognizer) -> None:
        self.recognizers.append(recognizer)

    def remove(self, name: str) -> None:
        self.recognizers = [r for r in self.recognizers if r.name != name]

    @property
    def supported_entities(self) -> list[str]:
        found = {e for r in self.recognizers for e in r.entities} | set(self.deny)
        return sorted(found)

    def analyze(
        self,
        text: str,
        entities: Iterable[str] | None = None,
        language: str = "en",
        *,
        min_score: float | None = None,
        resolve: bool = True,
    ) -> list[Finding]:
        if not isinstance(text, str):
            raise TypeError("analyze() takes a str; decode bytes first")
        if not text:
            return []
        wanted = frozenset(entities) if entities is not None else None
        threshold = self.min_score if min_score is None else min_score
        ctx = TextContext(text, language)
        found: list[Finding] = []
        for rec, _, _, _, pattern, live in self._applicable(ctx, language, wanted):
            if pattern is not None:
                if threshold > live and pattern.silent(ctx, threshold):
                    continue
                findings = pattern.scan(text, ctx)
            else:
                findings = rec.analyze(text, ctx)
            for f in findings:
                if f.score >= threshold and (wanted is None or f.entity_type in wanted):
                    found.append(f)
        found.extend(self._denied(text, wanted))
        if self._allow:
            found = [f for f in found if text[f.start : f.end].casefold() not in self._allow]
        if not resolve:
            return sorted(found, key=_position)
        return resolve_overlaps(_drop_parts(found))

    def _denied(self, text: str, wanted: frozenset[str] | None) -> Iterable[Finding]:
        for entity, pattern in self._deny:
            if wanted is None or entity in wanted:
                for m in pattern.finditer(text):
                    yield Finding(m.start(), m.end(), entity, 1.0, "deny_list", "deny list")


MAX_SHAPES = 4096  # text shapes whose applicable steps are kept; then the list starts over

# (digits, longest run, run lengths that gate some step, language, wanted entities)
_Shape = tuple[int, int, frozenset[int], str, frozenset[str] | None]


class _Step(NamedTuple):
    recognizer: Recognizer
    min_digits: int  # ASCII digits every match holds at least
    min_run: int  # and the longest run of them in a match at least
    runs: frozenset[int] | None  # a match holds a maximal digit run of one of these lengths
    # The recognizer again when it can tell it is silent and scan without its preconditions
    # (a subclass with its own ``analyze`` is run through that instead).
    pattern: PatternRecognizer | None
    # At thresholds up to this the pattern is never silent on a text its step applies to
    # (no gate, no context needed, its base score reaches the threshold): no need to ask.
    live: float

    @classmethod
    def of(cls, rec: Recognizer) -> _Step:
        pattern = (
            rec
            if isinstance(rec, PatternRecognizer)
            and type(rec).analyze is PatternRecognizer.analyze
            and type(rec).silent is PatternRecognizer.silent
            else None
        )
        return cls(
            rec,
            int(getattr(rec, "min_digits", 0)),
            int(getattr(rec, "min_run", 0)),
            pattern.runs if pattern is not None else None,
            pattern,
            pattern.score
            if pattern is not None and pattern.gate is None and not pattern.context_required
            else -1.0,
        )


# Entities that contain others as parts: a city inside an address, a name inside an e-mail.
COMPOSITES = frozenset({"ADDRESS", "URL", "EMAIL_ADDRESS"})


def _drop_parts(found: list[Finding]) -> list[Finding]:
    wholes = [f for f in found if f.entity_type in COMPOSITES]
    if not wholes:
        return found
    return [
        f
        for f in found
        if f.entity_type in COMPOSITES
        or not any(w.start <= f.start and f.end <= w.end for w in wholes)
    ]


def _position(f: Finding) -> tuple[int, int, str]:
    return (f.start, f.end, f.entity_type)
