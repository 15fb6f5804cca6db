"""AI-BOM export (CycloneDX 1.6, validated against the schema) and the scan on registration."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from model_files import make_model

from tsuba.core.errors import TsubaError
from tsuba.models.registry import Registry, UnsafeModelError, export_bom, register_model
from tsuba.models.registry.bom import validate_bom
from tsuba.models.sign import PrivateKeySigner

DS = "sha256:" + "ab" * 32


def test_bom_describes_the_model_its_files_datasets_and_pedigree(
    add, registry: Registry
) -> None:
    add("base:1", datasets=[f"web-crawl={DS}"], source="https://example.org/base")
    add("chat:2", parents=["base:1"], params=["lr=1e-5", "epochs=3"], shard_size=None,
        datasets=["blake3:" + "cd" * 32])
    doc = export_bom(registry, "chat:2")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc)) is None
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert (model["name"], model["version"], model["bom-ref"]) == ("chat", "2", "model:chat:2")
    props = {p["name"]: p["value"] for p in model["properties"]}
    info = registry.get("chat:2")
    assert props["tsuba:manifest:root_digest"] == info.root_digest
    assert props["tsuba:signature:key_hint"] == info.key_hint
    assert props["tsuba:status"] == "active" and props["tsuba:manifest:method"] == "files"
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {"config.json", "tokenizer.json", "model-00001-of-00002.safetensors",
                          "model-00002-of-00002.safetensors", "nested/generation_config.json"}
    config_hash = files["config.json"]["hashes"][0]
    import hashlib

    expected = hashlib.sha256((Path(info.uri) / "config.json").read_bytes()).hexdigest()
    assert config_hash == {"alg": "SHA-256", "content": expected}
    (ancestor,) = model["pedigree"]["ancestors"]
    assert ancestor["bom-ref"] == "model:base:1"
    datasets = {c["bom-ref"]: c for c in doc["components"]}
    assert datasets[f"dataset:{DS}"]["name"] == "web-crawl"
    assert datasets[f"dataset:{DS}"]["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    inherited = {c["bom-ref"]: {p["name"]: p["value"] for p in c["properties"]}[
        "tsuba:dataset:inherited"] for c in doc["components"]}
    assert inherited == {f"dataset:{DS}": "true", "dataset:blake3:" + "cd" * 32: "false"}
    card = model["modelCard"]
    assert card["modelParameters"]["datasets"] == [{"ref": "dataset:blake3:" + "cd" * 32}]
    assert card["properties"] == [{"name": "epochs", "value": "3"},
                                  {"name": "lr", "value": "1e-5"}]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert deps["model:chat:2"] == ["dataset:blake3:" + "cd" * 32]


def test_an_invalid_bom_is_never_handed_out(add, registry: Registry) -> None:
    add("m:1")
    doc = export_bom(registry, "m:1")
    broken = copy.deepcopy(doc)
    broken["metadata"]["component"]["modelCard"]["unknown"] = True
    with pytest.raises(TsubaError, match=r"does not validate against CycloneDX 1\.6"):
        validate_bom(broken)
    broken = copy.deepcopy(doc)
    broken["metadata"]["component"]["type"] = "weights"
    with pytest.raises(TsubaError, match="does not validate"):
        validate_bom(broken)


class Exploit:
    def __reduce__(self):  # what a malicious checkpoint carries
        import os

        return (os.system, ("echo owned",))


def test_registration_refuses_a_model_the_scanner_finds_unsafe(
    registry: Registry, signer: PrivateKeySigner, tmp_path: Path
) -> None:
    scanner = pytest.importorskip("tsuba.models.scan")
    if not hasattr(scanner, "scan_path"):
        pytest.skip("tsuba.models.scan has no scan_path yet")
    model = make_model(tmp_path / "evil")
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(Exploit(), protocol=2))
    with pytest.raises(UnsafeModelError, match="is unsafe"):
        register_model(registry, "evil", "1", model, signer=signer)
    assert not (model / "model.sig").exists() and registry.list_versions() == []
    clean = make_model(tmp_path / "clean")
    done = register_model(registry, "clean", "1", clean, signer=signer)
    assert done.info.scan["status"] == "clean" and done.info.scan["findings"] == 0
