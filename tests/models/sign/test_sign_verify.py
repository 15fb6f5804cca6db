"""Sign, then verify: every kind of change is named, nothing else is reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from model_files import make_model, pem_of

from tsuba.core.errors import InputError, IntegrityError
from tsuba.models.sign import (
    Manifest,
    ModelIntegrityError,
    PrivateKeySigner,
    TrustedKey,
    sign_path,
    verify_path,
)
from tsuba.models.sign.bundle import parse_bundle, parse_statement

MODES = [
    ("sha256", "auto"),
    ("sha256", None),
    ("sha256", 4096),
    ("blake2", None),
    ("blake2", 65_536),
    ("blake3", "auto"),
]


def changes(exc: ModelIntegrityError) -> list[tuple[str, str, str | None]]:
    return [(c.kind, c.path, c.previous) for c in exc.report.changes]


@pytest.mark.parametrize("algorithm,shard", MODES)
def test_a_signed_model_verifies_and_records_every_parameter(
    model: Path, signer: PrivateKeySigner, trusted: list[TrustedKey], algorithm: str, shard
) -> None:
    result = sign_path(model, signer, algorithm=algorithm, shard_size=shard)
    assert Path(result.signature) == model / "model.sig"
    ser = result.serialization
    assert ser["hash_type"] == algorithm
    assert ser["digest_size"] == (64 if algorithm == "blake2" else 32)
    assert "model.sig" in ser["ignore_paths"] and ".git" in ser["ignore_paths"]
    if shard is None or algorithm == "blake3":
        assert ser["method"] == "files" and "shard_size" not in ser
    else:
        assert ser["method"] == "shards"
        assert ser["shard_size"] == (1_000_000_000 if shard == "auto" else shard)
    report = verify_path(model, trusted)
    assert report.ok and report.files_checked == 5
    assert report.root_digest == result.root_digest
    assert report.bytes_hashed == result.total_bytes


@pytest.mark.parametrize("algorithm,shard", MODES)
def test_every_kind_of_change_is_named(
    model: Path, signer: PrivateKeySigner, trusted: list[TrustedKey], algorithm: str, shard
) -> None:
    (model / "nested" / "empty.txt").write_bytes(b"")
    sign_path(model, signer, algorithm=algorithm, shard_size=shard)
    blob = model / "model-00001-of-00002.safetensors"
    data = bytearray(blob.read_bytes())
    data[123_456] ^= 1  # same size, one bit
    blob.write_bytes(bytes(data))
    (model / "tokenizer.json").write_text('{"version": "1.0"}\nappended')
    (model / "config.json").unlink()
    (model / "model-00002-of-00002.safetensors").rename(model / "renamed.safetensors")
    (model / "nested" / "empty.txt").rename(model / "nested" / "moved-empty.txt")
    (model / "added.bin").write_bytes(b"new")
    (model / "added-empty").write_bytes(b"")
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, trusted)
    assert sorted(changes(caught.value)) == sorted([
        ("modified", "model-00001-of-00002.safetensors", None),
        ("modified", "tokenizer.json", None),
        ("removed", "config.json", None),
        ("renamed", "renamed.safetensors", "model-00002-of-00002.safetensors"),
        ("renamed", "nested/moved-empty.txt", "nested/empty.txt"),
        ("added", "added.bin", None),
        ("added", "added-empty", None),
    ])
    details = {c.path: c.detail for c in caught.value.report.changes}
    assert details["added-empty"] == "empty file"
    assert "size" in details["tokenizer.json"]
    assert "renamed: model-00002-of-00002.safetensors -> renamed.safetensors" in str(caught.value)
    assert isinstance(caught.value, IntegrityError) and caught.value.exit_code == 1


def test_an_added_empty_file_is_reported_in_shard_mode(
    model: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    sign_path(model, signer, shard_size=1000)
    (model / "nested" / "sneaky").write_bytes(b"")
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, trusted)
    assert changes(caught.value) == [("added", "nested/sneaky", None)]
    assert caught.value.report.notes == ()  # tsuba's file list proves it is new


def test_a_removed_empty_file_is_reported_in_shard_mode(
    tmp_path: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    model = make_model(tmp_path / "m", empty=True)
    sign_path(model, signer, shard_size=1000)
    verify_path(model, trusted)
    (model / "nested" / "empty.txt").unlink()
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, trusted)
    assert changes(caught.value) == [("removed", "nested/empty.txt", None)]


def test_shard_level_detail_names_the_bytes_that_differ(
    model: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    sign_path(model, signer, shard_size=100_000)
    blob = model / "model-00001-of-00002.safetensors"
    data = bytearray(blob.read_bytes())
    data[250_000] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(model, trusted)
    (change,) = caught.value.report.changes
    assert change.detail == "bytes 200000-300000 differ"


def test_a_single_file_model_signs_beside_itself(
    tmp_path: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"\x00" * 5000)
    result = sign_path(model, signer, shard_size=None)
    assert result.signature == str(tmp_path / "model.safetensors.sig")
    stmt = parse_statement(parse_bundle(Path(result.signature).read_bytes()).payload)
    assert [r["name"] for r in stmt.predicate["resources"]] == ["."]
    assert verify_path(model, trusted).ok
    model.write_bytes(b"\x00" * 4999 + b"\x01")
    with pytest.raises(ModelIntegrityError, match=r"modified: \. \(contents differ\)"):
        verify_path(model, trusted)


def test_a_signature_outside_the_model_is_not_ignored_inside_it(
    model: Path, tmp_path: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    sig = tmp_path / "elsewhere.sig"
    result = sign_path(model, signer, signature=sig)
    assert "model.sig" not in result.serialization["ignore_paths"]
    assert verify_path(model, trusted, signature=sig).ok
    (model / "model.sig").write_text("{}")  # no longer a name the signer ignored
    with pytest.raises(ModelIntegrityError, match=r"added: model\.sig"):
        verify_path(model, trusted, signature=sig)


def test_a_signature_for_another_model_does_not_pass_it(
    tmp_path: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    first = make_model(tmp_path / "first")
    second = make_model(tmp_path / "second")
    sign_path(first, signer)
    shutil.copy(first / "model.sig", second / "model.sig")  # replayed onto other files
    with pytest.raises(ModelIntegrityError) as caught:
        verify_path(second, trusted)
    assert {c.path for c in caught.value.report.changes} == {
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    }


def test_another_key_and_no_key_are_refused(model: Path, signer: PrivateKeySigner) -> None:
    sign_path(model, signer)
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(IntegrityError, match="made with another key"):
        verify_path(model, [TrustedKey(pem_of(stranger), "stranger")])
    with pytest.raises(InputError, match="no public key"):
        verify_path(model, [])
    with pytest.raises(InputError, match="no signature at"):
        verify_path(model, [], signature=model / "absent.sig")


def test_ignore_options_and_git_paths(
    model: Path, signer: PrivateKeySigner, trusted: list[TrustedKey]
) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: main")
    (model / "README.md").write_text("card")
    sign_path(model, signer, ignore_paths=["README.md"])
    (model / "README.md").write_text("changed card")
    (model / ".git" / "HEAD").write_text("ref: other")
    assert verify_path(model, trusted).ok
    sign_path(model, signer, ignore_git_paths=False)
    (model / ".git" / "HEAD").write_text("ref: third")
    with pytest.raises(ModelIntegrityError, match=r"modified: \.git/HEAD"):
        verify_path(model, trusted)


def test_blake3_with_shards_is_refused(model: Path, signer: PrivateKeySigner) -> None:
    with pytest.raises(InputError, match="BLAKE3 hashes each file on every core"):
        sign_path(model, signer, algorithm="blake3", shard_size=1000)


def test_manifest_round_trips_through_its_predicate(model: Path) -> None:
    from tsuba.models.sign import hash_spec

    for spec in (hash_spec("sha256", 1000), hash_spec("blake2", None), hash_spec("blake3")):
        built = Manifest.build(model, spec)
        back = Manifest.from_predicate(
            "m", json.loads(json.dumps(built.predicate()))
        )
        assert back.spec == built.spec
        assert back.resources == built.resources
        assert back.files == built.files
        assert back.root_digest() == built.root_digest()
