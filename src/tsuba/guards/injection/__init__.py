"""Prompt-injection and jailbreak detection: ``score(text)`` and ``detect(text)``.

Layers, cheapest first: normalisation (invisible characters, homoglyphs, compatibility forms,
base64 / hex / percent / rot13 / leetspeak / tag-character payloads), rules that name the
moves injections make, and a linear classifier shipped as data.  ``source`` says where the
text came from: a user's message, a retrieved document, or a tool's output, because indirect
injection hides inside otherwise ordinary data.  Conversations are scored with
:class:`ConversationRisk`, so probing spread over several turns adds up.
"""

from __future__ import annotations

from tsuba.guards.injection.detector import SOURCES, Label, Source, Verdict, analyze
from tsuba.guards.injection.model import LinearModel, load_manifest, load_model
from tsuba.guards.injection.session import ConversationRisk, RiskState

__all__ = [
    "SOURCES",
    "ConversationRisk",
    "Label",
    "LinearModel",
    "RiskState",
    "Source",
    "Verdict",
    "detect",
    "load_manifest",
    "load_model",
    "scan",
    "score",
]


def score(text: str, source: Source = "user") -> float:
    """Injection risk of ``text`` in [0, 1]; 0.5 is the 1%-false-positive operating point."""
    return analyze(text, source).score


def detect(
    text: str,
    source: Source = "user",
    *,
    threshold: float = 0.5,
    model: LinearModel | None = None,
) -> Verdict:
    """Score and explain ``text``; ``threshold`` moves the injection/benign boundary."""
    return analyze(text, source, model, threshold=threshold)


def scan(text: str, source: Source = "user", *, threshold: float = 0.5) -> tuple[str, bool, float]:
    """The (sanitized, valid, risk) triple every guard returns; text is never rewritten."""
    verdict = detect(text, source, threshold=threshold)
    return text, verdict.score < threshold, verdict.score
