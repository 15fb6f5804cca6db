"""The shipped weights: provenance recorded, licences respected, mismatches refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _reference_word_hashes(text: str) -> list[int]:
    """The word n-gram hashes written out one token at a time, as the definition reads."""
    import re
    from itertools import pairwise

    mask = (1 << 64) - 1
    base, mix, shift = 0x100000001B3, 0x9E3779B97F4A7C15, 64 - 18
    seed1, seed2 = 0x51ED270B27A5_0000 + 101, 0x51ED270B27A5_0000 + 102
    uni = []
    for token in re.findall(r"\w+|[^\w\s]", text):
        h = 0
        for ch in token:
            h = (h * base + ord(ch)) & mask
        uni.append(h)
    out = [((((u + seed1) & mask) * mix) & mask) >> shift for u in uni]
    out += [((((a * base + b + seed2) & mask) * mix) & mask) >> shift
            for a, b in pairwise(uni)]
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab Zé日本語 .!\n\u0430\U0001f600"), max_size=80))
def test_vectorised_word_hashing_matches_the_token_by_token_definition(text: str) -> None:
    from tsuba.guards.injection.features import _word_ngrams

    assert sorted(_word_ngrams(text).tolist()) == _reference_word_hashes(text)


def test_training_names_a_missing_mirror(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    try:
        from injection_data.sources import MissingMirror, _git_show
    finally:
        sys.path.pop(0)
    with pytest.raises(MissingMirror, match=r"sherdencooper/GPTFuzz.*github:sherdencooper/GPTFuzz"):
        _git_show(tmp_path, "sherdencooper/GPTFuzz", "0" * 40, "README.md")


def test_evaluation_only_sources_are_marked_and_absent_from_the_weights() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    try:
        from injection_data.sources import SOURCES
        from train_injection import key64
    finally:
        sys.path.pop(0)
    manifest = load_manifest()["datasets"]
    eval_only = [s for s in SOURCES if s.use == "eval"]
    assert {"tensor-trust", "giskard"} <= {s.name for s in eval_only}
    for src in eval_only:
        assert manifest[src.name]["use"] == "eval"
    mirror = Path("/work/.mirror")
    if not (mirror / "Giskard-AI+prompt-injections").exists():
        pytest.skip("the Giskard mirror is not on this machine")
    model_file = Path(load_model.__code__.co_filename).parent / "data" / "injection_model.npz"
    with np.load(model_file) as data:
        trained = set(int(k) for k in data["train_keys"])
    giskard = next(s for s in eval_only if s.name == "giskard").load(Path("."), mirror)
    assert giskard and not {key64(str(r["text"])) for r in giskard} & trained
