"""Prompt-injection and jailbreak detection: ``score(text)`` and ``detect(text)``.

Layers, cheapest first: normalisation (invisible characters, homoglyphs, compatibility forms,
base64 / hex / percent / rot13 / leetspeak / tag-character payloads), rules that name the
moves injections make, and a linear classifier shipped as data.  ``source`` says where the
text came from: a user's message, a retrieved document, or a tool's output, because indirect
injection hides inside otherwise ordinary data.  Conversations are scored with
:class:`ConversationRisk`, so probing spread over several turns adds up.
"""

from __future__ import annotations

from pathlib import Path

from tsuba.guards.injection import transformer as _transformer
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
    return detect(text, source).score


def detect(
    text: str,
    source: Source = "user",
    *,
    threshold: float = 0.5,
    model: LinearModel | None = None,
    transformer: str | Path | None = None,
) -> Verdict:
    """Score and explain ``text``; ``threshold`` moves the injection/benign boundary.

    ``transformer`` (or ``TSUBA_INJECTION_MODEL``) names a local model directory whose
    score is averaged with the linear one; unset, only the shipped model runs.
    """
    verdict = analyze(text, source, model, threshold=threshold)
    path = _transformer.configured_path(transformer)
    if path is None:
        return verdict
    second = _transformer.load_backend(str(path)).score(text)
    combined = _transformer.combine(verdict.score, second)
    label: Label = "injection" if combined >= threshold else (
        "suspicious" if verdict.label != "benign" or second >= 0.5 else "benign"
    )
    return Verdict(label, combined, (*verdict.reasons, f"transformer {path.name}: {second:.2f}"))


def scan(text: str, source: Source = "user", *, threshold: float = 0.5) -> tuple[str, bool, float]:
    """The (sanitized, valid, risk) triple every guard returns; text is never rewritten."""
    verdict = detect(text, source, threshold=threshold)
    return text, verdict.score < threshold, verdict.score
