"""Standalone verification of exported JSON: only the public key and the files are needed."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tsuba.core.audit import AuditLog, PrivateKeySigner
from tsuba.core.audit.verify import verify_consistency, verify_inclusion, verify_tree_head
from tsuba.core.errors import InputError, IntegrityError, TsubaError


@pytest.fixture
def exported(sqlite_engine: Engine, signer: PrivateKeySigner, event) -> Iterator[dict[str, Any]]:
    with AuditLog(sqlite_engine, signer) as log:
        log.append_many([event(i) for i in range(12)])
        old = log.sign_tree_head()
        log.append_many([event(i) for i in range(12, 21)])
        new = log.sign_tree_head()
        yield {
            "pem": signer.public_key_pem(),
            "proof": log.export_inclusion(7).to_dict(),
            "old_proof": log.export_inclusion(3, tree_size=12).to_dict(),
            "consistency": log.export_consistency(12, 21).to_dict(),
            "old": old.to_dict(),
            "new": new.to_dict(),
        }


def test_verifier_imports_without_storage_or_settings() -> None:
    code = (
        "import sys, tsuba.core.audit.verify\n"
        "bad = [m for m in ('sqlalchemy', 'pydantic', 'tsuba.core.storage', 'tsuba.core.config')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_valid_exports_verify_as_text_bytes_and_objects(exported: dict[str, Any]) -> None:
    pem = exported["pem"]
    for form in (json.dumps(exported["proof"]), json.dumps(exported["proof"]).encode(),
                 exported["proof"]):
        assert verify_inclusion(form, None, pem).leaf_index == 7
    assert verify_inclusion(exported["proof"], exported["new"], pem).tree_size == 21
    assert verify_inclusion(exported["old_proof"], None, pem).tree_size == 12
    assert verify_tree_head(json.dumps(exported["old"]), pem.decode()).tree_size == 12
    assert verify_consistency(exported["consistency"], None, None, pem).path
    assert verify_consistency(exported["consistency"], exported["old"], exported["new"], pem)


def test_another_key_is_refused(exported: dict[str, Any]) -> None:
    other = PrivateKeySigner.generate().public_key_pem()
    with pytest.raises(IntegrityError, match="not by the trusted key"):
        verify_inclusion(exported["proof"], None, other)
    with pytest.raises(IntegrityError, match="not by the trusted key"):
        verify_tree_head(exported["new"], other)


def _entry(proof: dict[str, Any]) -> bytes:
    return base64.b64decode(proof["entry"])


@pytest.mark.parametrize("where", ["entry", "entry+leaf", "path", "leaf_index", "tree_size"])
def test_forged_inclusion_proofs_fail(exported: dict[str, Any], where: str) -> None:
    proof = copy.deepcopy(exported["proof"])
    if where.startswith("entry"):
        forged = _entry(proof).replace(b"request 7", b"request 8")
        proof["entry"] = base64.b64encode(forged).decode()
        if where == "entry+leaf":
            proof["leaf_hash"] = hashlib.sha256(b"\x00" + forged).hexdigest()
    elif where == "path":
        h = proof["inclusion_path"][1]
        proof["inclusion_path"][1] = ("0" if h[0] != "0" else "1") + h[1:]
    elif where == "leaf_index":
        proof["leaf_index"] = 6
    else:
        proof["tree_size"] = 20
    with pytest.raises(IntegrityError):
        verify_inclusion(proof, None, exported["pem"])


@pytest.mark.parametrize("field", ["tree_size", "root_hash", "timestamp", "log_id", "signature"])
def test_forged_tree_heads_fail(exported: dict[str, Any], field: str) -> None:
    sth = copy.deepcopy(exported["new"])
    if field in ("tree_size", "timestamp"):
        sth[field] += 1
    else:
        h = sth[field]
        sth[field] = ("0" if h[0] != "0" else "1") + h[1:]
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_tree_head(sth, exported["pem"])
    proof = copy.deepcopy(exported["proof"])
    proof["sth"] = sth
    with pytest.raises(IntegrityError):
        verify_inclusion(proof, None, exported["pem"])


def test_head_of_another_log_is_refused(
    exported: dict[str, Any], tmp_path, signer: PrivateKeySigner, event
) -> None:
    from tsuba.core.storage import open_engine, upgrade

    eng = open_engine(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(eng)
    with AuditLog(eng, signer) as other:  # same key, different log
        other.append_many([event(i) for i in range(21)])
        foreign = other.sign_tree_head().to_dict()
    eng.dispose()
    with pytest.raises(IntegrityError, match="different logs"):
        verify_inclusion(exported["proof"], foreign, exported["pem"])


def test_proof_beyond_the_signed_head_is_refused(exported: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError, match="beyond the signed head"):
        verify_inclusion(exported["proof"], exported["old"], exported["pem"])


def test_consistency_against_the_wrong_heads_fails(exported: dict[str, Any]) -> None:
    pem = exported["pem"]
    with pytest.raises(IntegrityError, match="sizes 21 and 12"):
        verify_consistency(exported["consistency"], exported["new"], exported["old"], pem)
    bad = copy.deepcopy(exported["consistency"])
    bad["path"] = bad["path"][:-1]
    with pytest.raises(IntegrityError, match="not an extension"):
        verify_consistency(bad, None, None, pem)
    bare = {k: v for k, v in exported["consistency"].items() if not k.endswith("_sth")}
    with pytest.raises(InputError, match="pass the one you hold"):
        verify_consistency(bare, None, None, pem)
    roots = copy.deepcopy(exported["consistency"])
    roots["first_root"] = roots["second_root"]
    with pytest.raises(IntegrityError, match="roots other than"):
        verify_consistency(roots, None, None, pem)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: "not json {", "not valid JSON"),
        (lambda p: json.dumps([p]), "must be a JSON object"),
        (lambda p: json.dumps(p)[:-10], "not valid JSON"),  # truncated
        (lambda p: {**p, "format": "tsuba-audit-inclusion/v2"}, "format"),
        (lambda p: {k: v for k, v in p.items() if k != "leaf_hash"}, "lacks leaf_hash"),
        (lambda p: {**p, "extra": 1}, "unknown field"),
        (lambda p: {**p, "leaf_hash": p["leaf_hash"].upper()}, "lowercase hex"),
        (lambda p: {**p, "leaf_hash": p["leaf_hash"][:-2]}, "32 bytes"),
        (lambda p: {**p, "leaf_index": True}, "integer"),
        (lambda p: {**p, "tree_size": -1}, "integer"),
        (lambda p: {**p, "entry": p["entry"].rstrip("=")}, "base64"),
        (lambda p: {**p, "inclusion_path": "ab"}, "list"),
        (lambda p: {**p, "sth": {**p["sth"], "algorithm": "rsa"}}, "unsupported algorithm"),
        (lambda p: {**p, "sth": []}, "JSON object"),
    ],
)
def test_malformed_json_is_an_input_error(exported: dict[str, Any], mutate, message: str) -> None:
    with pytest.raises(InputError, match=message):
        verify_inclusion(mutate(copy.deepcopy(exported["proof"])), None, exported["pem"])


def test_a_non_key_is_an_input_error(exported: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="PEM public key"):
        verify_tree_head(exported["new"], b"-----BEGIN PUBLIC KEY-----\nAAAA\n")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**64) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_changed_field_is_refused_cleanly(exported: dict[str, Any], data) -> None:
    proof = copy.deepcopy(exported["proof"])
    path = data.draw(st.sampled_from(_paths(proof)), label="field")
    value = data.draw(_json_values, label="new value")
    target = proof
    for key in path[:-1]:
        target = target[key]
    if target[path[-1]] == value:
        return
    target[path[-1]] = value
    with pytest.raises(TsubaError) as info:
        verify_inclusion(proof, None, exported["pem"])
    assert isinstance(info.value, InputError | IntegrityError)


def test_ecdsa_p256_keys_work_end_to_end(sqlite_engine: Engine, event) -> None:
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()))
    with AuditLog(sqlite_engine, signer) as log:
        log.append_many([event(i) for i in range(5)])
        proof = log.export_inclusion(2).to_dict()
        assert log.verify().ok
    assert proof["sth"]["algorithm"] == "ecdsa-p256-sha256"
    verify_inclusion(proof, None, signer.public_key_pem())
