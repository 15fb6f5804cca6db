"""Signing with a key that never leaves a PKCS#11 token (a real SoftHSM2 token).

SoftHSM2 reads its configuration once per process, and other tests of this session may
have loaded it with their own token folder, so the token here is made and used in a child
process with its own configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from model_files import make_model

from tsuba.models.sign import ModelIntegrityError, public_key_files, verify_path

MODULE = os.environ.get("TSUBA_TEST_PKCS11_MODULE")
pytestmark = pytest.mark.skipif(not MODULE, reason="SoftHSM2 not configured "
                                "(set TSUBA_TEST_PKCS11_MODULE)")

CHILD = r"""
import sys
from pathlib import Path
from tsuba.core.keys import KeyKind
from tsuba.core.keys.pkcs11 import Pkcs11KeyManager
from tsuba.models.sign import KeyStoreSigner, sign_path

module, token, pin, model, out = sys.argv[1:]
km = Pkcs11KeyManager(module, token, pin)
km.create("model-key", KeyKind.ECDSA_P256)
result = sign_path(model, KeyStoreSigner(km, "model-key"), shard_size=None)
Path(out).write_bytes(km.public_key_pem("model-key"))
print(result.key)
"""


def softhsm_env(tmp_path: Path, label: str, pin: str) -> dict[str, str]:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                    "--so-pin", "87654321", "--pin", pin],
                   check=True, capture_output=True, env=env)
    return env


def test_a_model_signed_inside_softhsm_verifies_with_tsuba_and_model_signing(
    tmp_path: Path,
) -> None:
    assert MODULE is not None
    env = softhsm_env(tmp_path, "models", "4321")
    model = make_model(tmp_path / "model")
    public = tmp_path / "token.pub"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, MODULE, "models", "4321", str(model), str(public)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert child.returncode == 0, child.stderr
    assert "pkcs11 key 'model-key' version 1" in child.stdout
    trusted = public_key_files([public])
    report = verify_path(model, trusted)
    assert report.ok and report.key == f"public key {public}"
    cli = subprocess.run(
        [sys.executable, "-m", "model_signing", "verify", "key", str(model), "--signature",
         str(model / "model.sig"), "--public_key", str(public)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert cli.returncode == 0, cli.stderr
    (model / "config.json").write_text("{}")
    with pytest.raises(ModelIntegrityError, match="modified: config"):
        verify_path(model, trusted)
