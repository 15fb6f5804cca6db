"""Normalise, match rules, score with the linear model: the whole detector over one text.

Long texts are read in overlapping windows and score as their worst window, because an
injection hidden in a long retrieved page is a few sentences that averaging would dilute.
Decoded payloads are scored as windows of their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from tsuba.core.errors import InputError
from tsuba.guards.injection import features, heuristics
from tsuba.guards.injection.model import LinearModel, load_model
from tsuba.guards.injection.normalize import Normalized, normalize

Source = Literal["user", "document", "tool"]
Label = Literal["injection", "suspicious", "benign"]
SOURCES: tuple[Source, ...] = ("user", "document", "tool")

WINDOW = 1536  # characters of normalised text per window
STRIDE = 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """``label`` is injection at score >= 0.5 (about 1% false positives on held-out benign
    sources), suspicious at the 5% point, else benign; ``reasons`` say what was seen."""

    label: Label
    score: float
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "score": round(self.score, 4), "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class _Segment:
    where: str
    views: tuple[str, ...]
    hits: tuple[heuristics.Hit, ...]


def _check(text: object, source: str) -> None:
    if not isinstance(text, str):
        raise InputError(f"injection detection needs text (str), got {type(text).__name__}")
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")


def _signal_names(norm: Normalized) -> set[str]:
    names: set[str] = set()
    for signal in norm.signals:
        if signal.endswith("_nested"):
            names.add("nested")
            names.add(signal.removesuffix("_nested"))
        else:
            names.add(signal)
    if norm.payloads:
        names.add("payload")
    return names


def _dense(
    model: LinearModel, hits: Sequence[heuristics.Hit], signals: set[str], source: str
) -> list[int]:
    index = model.dense_index()
    on = {index[f"rule:{hit.rule}"] for hit in _applicable(hits, source)}
    on |= {index[f"signal:{s}"] for s in signals if f"signal:{s}" in index}
    on.add(index[f"source:{source}"])
    return sorted(on)


def _applicable(hits: Sequence[heuristics.Hit], source: str) -> list[heuristics.Hit]:
    if source != "user":
        return list(hits)
    return [hit for hit in hits if hit.rule not in heuristics.DATA_ONLY]


def _hits(views: Sequence[str]) -> tuple[heuristics.Hit, ...]:
    found: dict[str, heuristics.Hit] = {}
    for view in views:
        for hit in heuristics.find(view):
            found.setdefault(hit.rule, hit)
    return tuple(found.values())


def _segments(norm: Normalized) -> list[_Segment]:
    text = norm.text
    if len(text) <= WINDOW:
        views = norm.views()
        return [_Segment("text", views, _hits(views))]
    segs: list[_Segment] = []
    start = 0
    while True:
        end = min(start + WINDOW, len(text))
        window = text[start:end]
        segs.append(_Segment(f"text[{start}:{end}]", (window,), _hits((window,))))
        if end == len(text):
            break
        start += STRIDE
    if norm.payloads:
        segs.append(_Segment("payloads", norm.payloads, _hits(norm.payloads)))
    return segs


def example_features(
    text: str, source: Source = "user"
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], list[str]]:
    """One training example: the whole text, every view, every rule hit (no windows)."""
    norm = normalize(text)
    views = norm.views()
    idx, vals = features.hashed([features.prepare(v) for v in views])
    names = [f"rule:{h.rule}" for h in _applicable(_hits(views), source)]
    names += [f"signal:{s}" for s in sorted(_signal_names(norm)) if s in features.SIGNALS]
    names.append(f"source:{source}")
    return idx, vals, names


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _best(
    text: str, source: Source, model: LinearModel
) -> tuple[float, _Segment | None, set[str]]:
    norm = normalize(text)
    signals = _signal_names(norm)
    best_logit = -math.inf
    best: _Segment | None = None
    for seg in _segments(norm):
        idx, vals = features.hashed([features.prepare(v) for v in seg.views])
        logit = model.logit(idx, vals, _dense(model, seg.hits, signals, source))
        if logit > best_logit:
            best_logit, best = logit, seg
    return best_logit, best, signals


def raw_logit(text: str, source: Source = "user", model: LinearModel | None = None) -> float:
    """The uncalibrated logit of the worst window (for training and evaluation)."""
    _check(text, source)
    return _best(text, source, model or load_model())[0]


def analyze(
    text: str,
    source: Source = "user",
    model: LinearModel | None = None,
    *,
    threshold: float = 0.5,
) -> Verdict:
    """Score ``text`` and explain the score; ``threshold`` is where "injection" starts."""
    _check(text, source)
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold {threshold} is outside (0, 1]")
    model = model or load_model()
    best_logit, best, signals = _best(text, source, model)
    # Calibrated so that 0.5 is the block operating point and 1 logit keeps its width.
    score = _sigmoid(best_logit - model.block_logit)
    flag = min(_sigmoid(model.flag_logit - model.block_logit), threshold)
    label: Label = (
        "injection" if score >= threshold else "suspicious" if score >= flag else "benign"
    )
    reasons: list[str] = []
    if best is not None:
        reasons += [f"{hit.rule}: {hit.why}" for hit in _applicable(best.hits, source)]
        if best.where != "text":
            reasons.append(f"highest-scoring part: {best.where}")
    reasons += [f"disguise: {s}" for s in sorted(signals - {"payload"})]
    reasons.append(f"classifier logit {best_logit - model.block_logit:+.2f} vs block point")
    return Verdict(label, score, tuple(reasons))
