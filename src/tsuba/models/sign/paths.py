"""Where a model's signature lives when nobody says otherwise."""

from __future__ import annotations

from pathlib import Path

SIGNATURE_NAME = "model.sig"


def default_signature_path(model: Path) -> Path:
    """``model.sig`` inside a model folder (it travels with the model), ``<file>.sig`` beside
    a single-file model."""
    model = Path(model)
    if model.is_dir():
        return model / SIGNATURE_NAME
    return model.with_name(model.name + ".sig")


__all__ = ["SIGNATURE_NAME", "default_signature_path"]
