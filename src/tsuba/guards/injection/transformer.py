"""Optional second opinion from a locally installed transformer classifier.

Used only when a model directory is configured (``TSUBA_INJECTION_MODEL`` or an explicit
path) and ``transformers`` is importable; it never downloads anything
(``local_files_only``).  A configured model that cannot be loaded is an error, not a silent
fallback: a guard that was asked for two opinions must not quietly give one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from tsuba.core.errors import ConfigError

ENV_VAR = "TSUBA_INJECTION_MODEL"
# Label names that mean "attack" in the published injection classifiers.
_POSITIVE = ("injection", "jailbreak", "unsafe", "malicious", "label_1", "1")


def configured_path(path: str | Path | None = None) -> Path | None:
    """The model directory to use, or None when no transformer backend is configured."""
    raw = str(path) if path is not None else os.environ.get(ENV_VAR, "")
    return Path(raw).expanduser() if raw else None


class TransformerBackend:
    """Scores text with a local sequence classifier; ``score`` is P(attack)."""

    def __init__(self, path: Path, *, max_chars: int = 4096) -> None:
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"injection transformer model {path} has no config.json; point "
                f"{ENV_VAR} at a local Hugging Face model directory"
            )
        try:
            import transformers  # noqa: PLC0415 - optional, heavy: loaded only when configured
        except ImportError as exc:
            raise ConfigError(
                f"{ENV_VAR} is set but the transformers package is not installed"
            ) from exc
        try:
            self._pipe: Callable[..., Any] = transformers.pipeline(
                "text-classification",
                model=str(path),
                tokenizer=str(path),
                model_kwargs={"local_files_only": True},
                top_k=None,
                truncation=True,
            )
        except Exception as exc:  # any loader failure means the backend is unusable
            raise ConfigError(f"cannot load injection transformer model {path}: {exc}") from exc
        self.path = path
        self.max_chars = max_chars

    def score(self, text: str) -> float:
        out = self._pipe(text[: self.max_chars])
        labels = out[0] if out and isinstance(out[0], list) else out
        return positive_probability(labels)


def positive_probability(labels: list[dict[str, Any]]) -> float:
    """P(attack) from a pipeline's label list, whatever the model calls its classes."""
    total = 0.0
    for item in labels:
        name = str(item.get("label", "")).lower()
        if name in _POSITIVE or any(p in name for p in _POSITIVE[:4]):
            total += float(item.get("score", 0.0))
    return min(1.0, max(0.0, total))


@lru_cache(maxsize=2)
def load_backend(path: str) -> TransformerBackend:
    return TransformerBackend(Path(path))


def combine(linear: float, transformer: float) -> float:
    """The mean of two calibrated opinions: either alone can move a text over 0.5 only
    when it is confident and the other is not sure of the opposite."""
    return 0.5 * (linear + transformer)
