"""Content guards on the request path: a protocol, a configured chain, the word guard.

A guard looks at text and reports findings, each with a verdict: allow, flag (let it
through, record it), pseudonymize (replace the span with a placeholder that the answer gets
back as the real value), redact (replace the span) or block.  The chain runs every guard that
applies to a route, a model and a stage (input or output), applies redactions and takes the
strictest verdict.  A guard that fails blocks: content is never let through unchecked.

Guards declare ``max_match``, the longest text one finding can span, so the streaming path
knows how much to hold back: text is released only once no finding could still grow into it.
Content guards (PII, secrets, prompt injection) register a kind with ``register_kind``.
Guards that keep state across requests (conversation risk) also implement ``converse``, which
the chain calls once per request with the newest user message and the conversation's keys.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal, Protocol

from tsuba.core.config import GuardSettings
from tsuba.core.errors import ConfigError, InputError, StorageError

Stage = Literal["input", "output"]
Action = Literal["block", "redact", "flag", "pseudonymize"]
# (entity type, value) -> the conversation's placeholder for it (from the mapping store).
Assign = Callable[[str, str], str]


class Verdict(IntEnum):
    """Ordered by strictness, so a chain's verdict is the maximum of its findings'."""

    ALLOW = 0
    FLAG = 1
    PSEUDONYMIZE = 2
    REDACT = 3
    BLOCK = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    guard: str
    verdict: Verdict
    reason: str
    start: int = 0  # span in the inspected text
    end: int = 0
    replacement: str = "[REDACTED]"
    entity_type: str = ""  # what a pseudonymize finding is numbered as (<TYPE_n>)

    def to_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "verdict": self.verdict.label,
            "reason": self.reason,
            "span": [self.start, self.end],
        }


class Guard(Protocol):
    name: str
    action: Action
    max_match: int  # longest span a finding can cover, in characters

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        """Findings in ``text``; pure and fast (runs on the event loop)."""
        ...


@dataclass(frozen=True, slots=True)
class Conversation:
    """Whose conversation a request belongs to: non-secret, stable keys."""

    session: str
    principal: str


class ConversationGuard(Guard, Protocol):
    def converse(
        self, text: str, conversation: Conversation, *, remember: bool = True
    ) -> list[Finding]:
        """Findings for the newest user message read with its conversation (may do I/O).

        ``remember=False``: count the message but keep none of its text.  A store that
        cannot be reached raises StorageError: the request is refused.
        """
        ...


GuardFactory = Callable[[GuardSettings], Guard]
_KINDS: dict[str, GuardFactory] = {}


def register_kind(kind: str, factory: GuardFactory) -> None:
    """Make ``kind`` usable in ``gateway.guards``; later registrations replace earlier ones."""
    _KINDS[kind] = factory


def _verdict_of(action: Action) -> Verdict:
    return {
        "block": Verdict.BLOCK,
        "redact": Verdict.REDACT,
        "flag": Verdict.FLAG,
        "pseudonymize": Verdict.PSEUDONYMIZE,
    }[action]


class WordGuard:
    """Finds configured words anywhere in the text, case-insensitively (substrings included).

    Substring matching is the stricter choice: a word split across streamed windows or
    glued to other text is still found.
    """

    def __init__(self, name: str, words: Iterable[str], action: Action = "block") -> None:
        cleaned = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
        if not cleaned:
            raise ConfigError(f"guard '{name}': options.words must list at least one word")
        self.name = name
        self.action: Action = action
        self.max_match = max(len(w) for w in cleaned)
        self._verdict = _verdict_of(action)
        self._pattern = re.compile("|".join(re.escape(w) for w in cleaned), re.IGNORECASE)

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        return [
            Finding(
                self.name,
                self._verdict,
                f"configured word '{m.group(0).lower()}' in the {stage}",
                m.start(),
                m.end(),
            )
            for m in self._pattern.finditer(text)
        ]


def _word_guard(cfg: GuardSettings) -> Guard:
    words = cfg.options.get("words")
    extra = set(cfg.options) - {"words"}
    if extra:
        raise ConfigError(f"guard '{cfg.name}': unknown option(s) {', '.join(sorted(extra))}")
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError(f"guard '{cfg.name}': options.words must be a list of strings")
    return WordGuard(cfg.name, words, cfg.action)


register_kind("word", _word_guard)


class ContentBlocked(InputError):
    """A guard blocked the request or the response (HTTP 400, code input/output_blocked)."""

    def __init__(self, stage: Stage, findings: Sequence[Finding]) -> None:
        blocking = [f for f in findings if f.verdict is Verdict.BLOCK]
        first = blocking[0] if blocking else findings[0]
        if stage == "input":
            message = f"the request was blocked by guard '{first.guard}': {first.reason}"
        else:  # the reason may quote the response, which the client must not see
            message = f"the response was blocked by guard '{first.guard}'"
        super().__init__(message)
        self.code = f"{stage}_blocked"
        self.stage = stage
        self.findings = tuple(findings)


@dataclass(frozen=True, slots=True)
class ChainResult:
    verdict: Verdict
    text: str  # with redactions applied
    findings: tuple[Finding, ...] = ()


_ALLOW_EMPTY: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class GuardChain:
    """The guards for one (route, model, stage), in configured order."""

    stage: Stage
    guards: tuple[Guard, ...] = ()
    max_match: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_match", max((g.max_match for g in self.guards), default=0))

    def __bool__(self) -> bool:
        return bool(self.guards)

    @property
    def pseudonymizes(self) -> bool:
        return any(g.action == "pseudonymize" for g in self.guards)

    @property
    def converses(self) -> bool:
        return any(callable(getattr(g, "converse", None)) for g in self.guards)

    def converse(
        self, text: str, conversation: Conversation, *, remember: bool = True
    ) -> list[Finding]:
        """Run the conversation-aware guards; StorageError propagates (fail closed)."""
        found: list[Finding] = []
        for guard in self.guards:
            converse = getattr(guard, "converse", None)
            if not callable(converse):
                continue
            try:
                found.extend(converse(text, conversation, remember=remember))
            except StorageError:
                raise
            except Exception as exc:  # a broken guard blocks: never pass content unchecked
                found.append(
                    Finding(
                        guard.name,
                        Verdict.BLOCK,
                        f"guard failed ({type(exc).__name__}); content refused",
                    )
                )
        return found

    def findings(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for guard in self.guards:
            try:
                found.extend(guard.inspect(text, self.stage))
            except Exception as exc:  # a broken guard blocks: never pass content unchecked
                found.append(
                    Finding(
                        guard.name,
                        Verdict.BLOCK,
                        f"guard failed ({type(exc).__name__}); content refused",
                    )
                )
        return found

    def run(self, text: str, assign: Assign | None = None) -> ChainResult:
        """Inspect ``text`` and apply redactions and pseudonyms unless something blocks.

        Pseudonymize findings get their placeholder from ``assign``; without one (a path
        that cannot restore values) they are redacted as ``<TYPE>``, so the value never
        passes.  A mapping store failing raises StorageError: nothing is forwarded.
        """
        if not self.guards or not text:
            return ChainResult(Verdict.ALLOW, text, _ALLOW_EMPTY)
        found = self.findings(text)
        if not found:
            return ChainResult(Verdict.ALLOW, text, _ALLOW_EMPTY)
        verdict = max(f.verdict for f in found)
        if verdict is not Verdict.BLOCK:
            edits = [f for f in found if f.verdict in (Verdict.REDACT, Verdict.PSEUDONYMIZE)]
            if assign is not None:
                edits = [
                    replace(f, replacement=assign(f.entity_type, text[f.start : f.end]))
                    if f.verdict is Verdict.PSEUDONYMIZE and f.entity_type
                    else f
                    for f in edits
                ]
            if edits:
                text = redact(text, edits)
        return ChainResult(verdict, text, tuple(found))


def redact(text: str, findings: Sequence[Finding], *, start: int = 0) -> str:
    """``text`` with every finding's span (clipped to ``start``..) replaced; overlaps merge."""
    spans = sorted(
        (max(f.start, start), f.end, f.replacement) for f in findings if f.end > start
    )
    out: list[str] = []
    pos = 0
    for abs_start, abs_end, repl in spans:
        begin, end = abs_start - start, abs_end - start
        if end <= pos:
            continue  # inside a span already replaced
        if begin > pos:
            out.append(text[pos:begin])
        if not out or out[-1] != repl or begin > pos:
            out.append(repl)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _selects(patterns: list[str], value: str) -> bool:
    return any(p in ("*", value) or fnmatch.fnmatchcase(value, p) for p in patterns)


class GuardRegistry:
    """Configured guards, with the chain for each (route, model, stage) built once and cached."""

    def __init__(
        self, configs: Sequence[GuardSettings], kinds: Mapping[str, GuardFactory] | None = None
    ) -> None:
        factories = dict(_KINDS if kinds is None else kinds)
        self._configs = list(configs)
        self._guards: list[tuple[GuardSettings, Guard]] = []
        names: set[str] = set()
        for cfg in self._configs:
            if cfg.name in names:
                raise ConfigError(f"two guards are named '{cfg.name}': names must be unique")
            names.add(cfg.name)
            factory = factories.get(cfg.kind)
            if factory is None:
                known = ", ".join(sorted(factories)) or "none"
                raise ConfigError(f"guard '{cfg.name}': unknown kind '{cfg.kind}' (known: {known})")
            self._guards.append((cfg, factory(cfg)))
        self._cache: dict[tuple[str, str, Stage], GuardChain] = {}

    def chain(self, route: str, model: str, stage: Stage) -> GuardChain:
        key = (route, model, stage)
        chain = self._cache.get(key)
        if chain is None:
            chain = GuardChain(
                stage,
                tuple(
                    g
                    for cfg, g in self._guards
                    if cfg.stage in (stage, "both")
                    and _selects(cfg.routes, route)
                    and _selects(cfg.models, model)
                ),
            )
            if len(self._cache) < 10_000:
                self._cache[key] = chain
        return chain
