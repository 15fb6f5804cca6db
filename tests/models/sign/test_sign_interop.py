"""Both directions against OpenSSF's ``model_signing`` 1.1 (its API and its command line).

(a) model_signing verifies what tsuba signs; (b) tsuba verifies every kind of signature
model_signing makes: per file and sharded, SHA-256, BLAKE2 and BLAKE3, P-256/384/521 keys.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from model_files import make_model, pem_of, write_key_files
from model_signing import hashing as ms_hashing
from model_signing import signing as ms_signing
from model_signing import verifying as ms_verifying

from tsuba.models.sign import (
    ModelIntegrityError,
    PrivateKeySigner,
    TrustedKey,
    sign_path,
    verify_path,
)

TSUBA_MODES = [
    ("sha256", None),
    ("sha256", "auto"),
    ("sha256", 65_536),
    ("blake2", None),
    ("blake2", 65_536),
    ("blake3", "auto"),
]


def ms_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )


def ms_verify(model: Path, signature: Path, public: Path,
              config: ms_hashing.Config | None = None) -> None:
    verifier = ms_verifying.Config().use_elliptic_key_verifier(public_key=public)
    if config is not None:
        verifier.set_hashing_config(config)
    verifier.verify(model, signature)


# -- (a) model_signing verifies tsuba ------------------------------------------------------
@pytest.mark.parametrize("algorithm,shard", TSUBA_MODES)
def test_model_signing_api_verifies_every_tsuba_mode_from_the_signature_alone(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey, algorithm: str, shard
) -> None:
    model = make_model(tmp_path / "model")
    _, public = write_key_files(ec_key, tmp_path)
    sign_path(model, PrivateKeySigner(ec_key), algorithm=algorithm, shard_size=shard)
    # No hashing configuration given: model_signing rebuilds it from what tsuba recorded
    # (its own BLAKE2 and sharded signatures cannot be verified that way).
    ms_verify(model, model / "model.sig", public)
    (model / "config.json").write_text('{"architectures": ["Evil"]}\n')
    with pytest.raises(ValueError, match="Signature mismatch"):
        ms_verify(model, model / "model.sig", public)


def test_model_signing_cli_verifies_a_tsuba_signature(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    model = make_model(tmp_path / "model")
    _, public = write_key_files(ec_key, tmp_path)
    # The CLI always hashes whole files with SHA-256, so that is the mode to sign in.
    sign_path(model, PrivateKeySigner(ec_key), shard_size=None)
    ok = ms_cli("verify", "key", str(model), "--signature", str(model / "model.sig"),
                "--public_key", str(public), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "Verification succeeded" in ok.stdout
    (model / "nested" / "generation_config.json").write_text("{}")
    bad = ms_cli("verify", "key", str(model), "--signature", str(model / "model.sig"),
                 "--public_key", str(public), cwd=tmp_path)
    assert bad.returncode == 1
    assert "nested/generation_config.json" in bad.stderr
    other = ec.generate_private_key(ec.SECP256R1())
    _, wrong = write_key_files(other, tmp_path / "model" / "nested")
    refused = ms_cli("verify", "key", str(model), "--signature", str(model / "model.sig"),
                     "--public_key", str(wrong), cwd=tmp_path)
    assert refused.returncode == 1 and "Key mismatch" in refused.stderr


# -- (b) tsuba verifies model_signing ------------------------------------------------------
MS_MODES = [
    ("files", "sha256"),
    ("files", "blake2"),
    ("files", "blake3"),
    ("shards", "sha256"),
    ("shards", "blake2"),
]


def ms_config(method: str, algorithm: str, shard: int = 100_000) -> ms_hashing.Config:
    config = ms_hashing.Config()
    if method == "files":
        return config.use_file_serialization(hashing_algorithm=algorithm)
    return config.use_shard_serialization(hashing_algorithm=algorithm, shard_size=shard)


@pytest.mark.parametrize("method,algorithm", MS_MODES)
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()],
                         ids=["p256", "p384", "p521"])
def test_tsuba_verifies_every_kind_of_model_signing_signature(
    tmp_path: Path, method: str, algorithm: str, curve: ec.EllipticCurve
) -> None:
    model = make_model(tmp_path / "model", big=250_000)
    key = ec.generate_private_key(curve)
    private, _ = write_key_files(key, tmp_path)
    signature = tmp_path / "model.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        ms_config(method, algorithm)
    ).sign(model, signature)
    trusted = [TrustedKey(pem_of(key), "model_signing key")]
    report = verify_path(model, trusted, signature=signature)
    assert report.ok and report.files_checked == 5
    assert report.serialization["method"] == method
    blob = model / "model-00001-of-00002.safetensors"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, trusted, signature=signature)
    assert [(c.kind, c.path) for c in caught.value.report.changes] == [
        ("modified", "model-00001-of-00002.safetensors")
    ]


def test_tsuba_verifies_a_signature_from_the_model_signing_cli(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    model = make_model(tmp_path / "model")
    (model / "README.md").write_text("model card")
    private, _ = write_key_files(ec_key, tmp_path)
    made = ms_cli("sign", "key", str(model), "--private_key", str(private),
                  "--signature", str(model / "model.sig"), "--ignore-paths",
                  str(model / "README.md"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    trusted = [TrustedKey(pem_of(ec_key), "cli key")]
    report = verify_path(model, trusted)  # model.sig inside the folder: found by default
    assert report.ok
    assert {"model.sig", "README.md"} <= set(report.serialization["ignore_paths"])
    (model / "README.md").write_text("edited card: ignored, as the signer asked")
    assert verify_path(model, trusted).ok
    (model / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"removed: tokenizer\.json"):
        verify_path(model, trusted)


def test_an_added_empty_file_that_model_signing_misses_in_shard_mode_is_reported(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    model = make_model(tmp_path / "model")
    private, public = write_key_files(ec_key, tmp_path)
    signature = tmp_path / "model.sig"
    config = ms_config("shards", "sha256", 100_000)
    ms_signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        config
    ).sign(model, signature)
    (model / "nested" / "__init__.py").write_bytes(b"")
    # model_signing passes the model with the new file in it ...
    ms_verify(model, signature, public, ms_config("shards", "sha256", 100_000))
    # ... tsuba does not.
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, [TrustedKey(pem_of(ec_key), "k")], signature=signature)
    ((kind, path, detail),) = [(c.kind, c.path, c.detail) for c in caught.value.report.changes]
    assert (kind, path, detail) == ("added", "nested/__init__.py", "empty file")
    assert "record no empty files" in caught.value.report.notes[0]


def test_tsuba_signatures_in_shard_mode_also_pass_model_signing_with_empty_files(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """tsuba's extra file list must not break model_signing's view of the same signature."""
    model = make_model(tmp_path / "model", empty=True)
    _, public = write_key_files(ec_key, tmp_path)
    sign_path(model, PrivateKeySigner(ec_key), shard_size=100_000)
    ms_verify(model, model / "model.sig", public)
    assert verify_path(model, [TrustedKey(pem_of(ec_key), "k")]).ok
