"""The shipped linear classifier: weights in a small .npz beside this module, numpy inference.

A linear model over hashed n-grams and rule hits is small (about half a megabyte), fast
(a dot product per text) and explainable (rule weights are readable).  The file records the
dense feature names it was trained with; a file that does not match this code's rules is
refused instead of silently scoring with shifted weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tsuba.core.errors import ConfigError
from tsuba.guards.injection.features import N_HASHED, dense_names
from tsuba.guards.injection.heuristics import RULE_NAMES

WEIGHTS_FILE = "injection_model.npz"
MANIFEST_FILE = "injection_manifest.json"


@dataclass(frozen=True, slots=True)
class LinearModel:
    hashed: npt.NDArray[np.float32]
    dense: npt.NDArray[np.float32]
    dense_names: tuple[str, ...]
    bias: float
    # Logits of the operating points chosen on held-out benign sources: at ``block_logit``
    # about 1% of benign texts score higher, at ``flag_logit`` about 5%.
    block_logit: float
    flag_logit: float

    def logit(
        self,
        indices: npt.NDArray[np.int32],
        values: npt.NDArray[np.float32],
        dense_on: list[int],
    ) -> float:
        total = self.bias + float(np.dot(self.hashed[indices], values))
        if dense_on:
            total += float(self.dense[dense_on].sum())
        return total

    def dense_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.dense_names)}


def _data_path(name: str) -> Path:
    return Path(str(resources.files("tsuba.guards.injection") / "data" / name))


def load_model(path: Path | None = None) -> LinearModel:
    """Read weights from ``path`` (default: the ones shipped in the package, read once)."""
    return _load(str(path)) if path is not None else _shipped()


@lru_cache(maxsize=1)
def _shipped() -> LinearModel:
    # Resolving the package resource costs more than scoring a text, so it happens once.
    return _load(str(_data_path(WEIGHTS_FILE)))


@lru_cache(maxsize=4)
def _load(path: str) -> LinearModel:
    try:
        with np.load(path, allow_pickle=False) as data:
            hashed = data["hashed"].astype(np.float32)
            dense = data["dense"].astype(np.float32)
            names = tuple(str(n) for n in data["dense_names"])
            bias, block, flag = (float(x) for x in data["scalars"])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"injection model {path} is missing or unreadable ({exc}); reinstall tsuba or "
            "retrain with scripts/train_injection.py"
        ) from exc
    expected = dense_names(RULE_NAMES)
    if hashed.shape != (N_HASHED,) or names != expected or dense.shape != (len(expected),):
        raise ConfigError(
            f"injection model {path} was trained for other features than this code "
            "(rules or hashing changed); retrain it with scripts/train_injection.py"
        )
    return LinearModel(hashed, dense, names, bias, block, flag)


def load_manifest() -> dict[str, object]:
    """Where the shipped weights came from: datasets, their commits and licences, metrics."""
    path = _data_path(MANIFEST_FILE)
    result: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return result
