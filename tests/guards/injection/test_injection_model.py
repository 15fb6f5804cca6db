"""The shipped weights: provenance recorded, licences respected, mismatches refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tsuba.core.errors import ConfigError
from tsuba.guards.injection.features import N_HASHED, hashed, prepare
from tsuba.guards.injection.model import load_manifest, load_model


def test_manifest_records_every_dataset_with_commit_and_licence() -> None:
    manifest = load_manifest()
    datasets = manifest["datasets"]
    assert isinstance(datasets, dict) and len(datasets) >= 5
    for name, info in datasets.items():
        assert info["commit"] and info["licence"] and info["use"] in ("train", "eval"), name
    assert datasets["tensor-trust"]["use"] == "eval"
    assert manifest["leave_one_source_out"]["per_source"]


def test_eval_only_data_is_not_in_the_weights() -> None:
    import json

    dev = Path(__file__).resolve().parents[4] / "shared/data/prompt-injection/dev.jsonl"
    if not dev.exists():
        pytest.skip("the development set is not beside this checkout")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    try:
        from train_injection import key64
    finally:
        sys.path.pop(0)
    model_file = Path(load_model.__code__.co_filename).parent / "data" / "injection_model.npz"
    with np.load(model_file) as data:
        trained = set(int(k) for k in data["train_keys"])
    tensor_trust = [json.loads(x)["text"] for x in dev.read_text().splitlines()
                    if json.loads(x)["source"].startswith("tensor-trust")]
    assert tensor_trust and not {key64(t) for t in tensor_trust} & trained


def test_weights_that_do_not_match_the_rules_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, hashed=np.zeros(N_HASHED, np.float16), dense=np.zeros(3, np.float32),
             dense_names=np.array(["rule:a", "rule:b", "source:user"]),
             scalars=np.zeros(3))
    with pytest.raises(ConfigError, match="retrain"):
        load_model(bad)
    with pytest.raises(ConfigError, match="missing or unreadable"):
        load_model(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "junk.npz")


def test_feature_hashing_is_deterministic_and_in_range() -> None:
    a = hashed([prepare("Ignore the rules")])
    b = hashed([prepare("Ignore   the RULES")])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() < N_HASHED
    idx, _ = hashed([prepare("word " * 1000)])
    assert len(idx) == len(set(idx.tolist()))  # presence, not counts
