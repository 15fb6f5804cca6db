"""PII detection: ``analyze(text) -> list[Finding]``, pure and offline.

The default analyzer runs the built-in recognizers (patterns with python-stdnum and
phonenumbers validators, dates, addresses, and gazetteers for names and places).  Build an
:class:`Analyzer` for allow and deny lists, custom recognizers or an NER backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from tsuba.guards.pii.analyzer import (
    DEFAULT_MIN_SCORE,
    LANGUAGES,
    Analyzer,
    default_recognizers,
    recognizer_from_config,
    resolve_validator,
)
from tsuba.guards.pii.ner import available_backends, build_backend
from tsuba.guards.pii.recognizer import PatternRecognizer, Recognizer, TextContext
from tsuba.guards.types import Finding

_default: list[Analyzer] = []
_lock = threading.Lock()


def default_analyzer() -> Analyzer:
    if not _default:
        with _lock:
            if not _default:
                _default.append(Analyzer())
    return _default[0]


def analyze(
    text: str,
    entities: Iterable[str] | None = None,
    language: str = "en",
    *,
    min_score: float | None = None,
) -> list[Finding]:
    """PII findings in ``text``: non-overlapping, sorted by position, offsets into the str."""
    return default_analyzer().analyze(text, entities, language, min_score=min_score)


__all__ = [
    "DEFAULT_MIN_SCORE",
    "LANGUAGES",
    "Analyzer",
    "Finding",
    "PatternRecognizer",
    "Recognizer",
    "TextContext",
    "analyze",
    "available_backends",
    "build_backend",
    "default_analyzer",
    "default_recognizers",
    "recognizer_from_config",
    "resolve_validator",
]
