"""tsuba.guards on the request path: guard kinds ``pii``, ``secrets``, ``injection``, ``leaks``.

Each adapter turns the pure library's findings into the chain's findings; the chain decides
what a verdict does (flag, redact, block) and a failing guard blocks.  Configure them in
``gateway.guards``, e.g. ``{name = "pii", kind = "pii", stage = "both", action = "redact"}``.

Options:
- pii: ``entities`` (list, default all), ``language`` (default "en"), ``min_score``.
- secrets: ``min_score`` (default 0.5).
- injection: ``threshold`` (default 0.5); input is scored as ``user`` text, output as
  ``tool`` text (a model echoing instructions it found).  One finding spans the whole text.
- leaks: ``allowed_hosts`` (list): markdown/HTML resources that would carry data elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsuba.core.config import GuardSettings
from tsuba.core.errors import ConfigError
from tsuba.gateway.guards import Action, Finding, Guard, Stage, Verdict, register_kind
from tsuba.guards import injection, leaks, pii, secrets
from tsuba.guards.types import Finding as ContentFinding

_VERDICT = {"block": Verdict.BLOCK, "redact": Verdict.REDACT, "flag": Verdict.FLAG}


def _options(cfg: GuardSettings, allowed: set[str]) -> dict[str, Any]:
    extra = set(cfg.options) - allowed
    if extra:
        raise ConfigError(f"guard '{cfg.name}': unknown option(s) {', '.join(sorted(extra))}")
    return dict(cfg.options)


class _SpanGuard:
    """A guard whose library call returns spans (PII, secrets, leaks)."""

    def __init__(
        self,
        name: str,
        action: Action,
        max_match: int,
        find: Callable[[str, Stage], list[ContentFinding]],
    ) -> None:
        self.name = name
        self.action: Action = action
        self.max_match = max_match
        self._verdict = _VERDICT[action]
        self._find = find

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        return [
            Finding(
                self.name,
                self._verdict,
                f"{f.entity_type} ({f.recognizer}) in the {stage}",
                f.start,
                f.end,
                replacement=f"<{f.entity_type}>",
            )
            for f in self._find(text, stage)
        ]


def _pii(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"entities", "language", "min_score"})
    entities = opts.get("entities")
    language = str(opts.get("language", "en"))
    min_score = opts.get("min_score")
    if language not in pii.LANGUAGES:
        raise ConfigError(f"guard '{cfg.name}': language must be one of {sorted(pii.LANGUAGES)}")

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return pii.analyze(text, entities, language, min_score=min_score)

    # Addresses are the longest PII spans; 200 characters covers a full postal address.
    return _SpanGuard(cfg.name, cfg.action, 200, find)


def _secrets(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"min_score"})
    min_score = float(opts.get("min_score", 0.5))

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return secrets.scan(text, min_score=min_score)

    # A PEM private key block is the longest secret (a 4096-bit RSA key is about 3.3 KB).
    return _SpanGuard(cfg.name, cfg.action, 4096, find)


def _leaks(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"allowed_hosts"})
    hosts = opts.get("allowed_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"guard '{cfg.name}': options.allowed_hosts must be a list of hosts")

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return leaks.find_exfiltration(text, allowed_hosts=hosts)

    return _SpanGuard(cfg.name, cfg.action, 2048, find)


class InjectionGuard:
    """Scores the whole text; a verdict at or above the threshold is one finding over it."""

    def __init__(self, name: str, action: Action, threshold: float) -> None:
        self.name = name
        self.action: Action = action
        self.max_match = 2048
        self._verdict = _VERDICT[action]
        self._threshold = threshold

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        if not text.strip():
            return []
        source: injection.Source = "user" if stage == "input" else "tool"
        verdict = injection.detect(text, source, threshold=self._threshold)
        if verdict.label != "injection":
            return []
        why = "; ".join(verdict.reasons[:3]) or "classifier"
        return [
            Finding(
                self.name,
                self._verdict,
                f"prompt injection (score {verdict.score:.2f}: {why}) in the {stage}",
                0,
                len(text),
                replacement="[REMOVED: prompt injection]",
            )
        ]


def _injection(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"threshold"})
    threshold = float(opts.get("threshold", 0.5))
    if not 0.0 < threshold <= 1.0:
        raise ConfigError(f"guard '{cfg.name}': options.threshold must be in (0, 1]")
    return InjectionGuard(cfg.name, cfg.action, threshold)


def register() -> None:
    register_kind("pii", _pii)
    register_kind("secrets", _secrets)
    register_kind("leaks", _leaks)
    register_kind("injection", _injection)


register()
