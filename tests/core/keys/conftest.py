"""Key managers for tests: a real local keyring, a real SoftHSM2 token, a Vault stand-in.

The SoftHSM2 token lives in a temporary token directory made for this test session
(``SOFTHSM2_CONF`` is pointed at it before the PKCS#11 module is first loaded: SoftHSM2 reads
it once per process).  Vault has no binary here, so the ``vault`` parameter uses the HTTP
stand-in in ``fake_vault.py``; real-Vault tests are in ``test_keys_vault.py``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_vault import TOKEN, FakeTransit, serve

from tsuba.core.keys.base import KeyManager
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret

PKCS11_MODULE = os.environ.get("TSUBA_TEST_PKCS11_MODULE")


@dataclass(frozen=True)
class SoftHsm:
    module: str
    label: str
    pin: str
    spare_label: str  # a second token nobody has logged in to yet
    conf: Path


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    if not PKCS11_MODULE:
        pytest.skip("SoftHSM2 not configured (set TSUBA_TEST_PKCS11_MODULE)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(PKCS11_MODULE, "tsuba-test", "123456", "tsuba-spare", conf)
    for label in (hsm.label, hsm.spare_label):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", "87654321", "--pin", hsm.pin],
            check=True, capture_output=True,
        )
    return hsm


@pytest.fixture
def master() -> MasterSecret:
    return MasterSecret(source="test", key=os.urandom(32))


@pytest.fixture
def local_km(tmp_path: Path, master: MasterSecret) -> LocalKeyManager:
    return LocalKeyManager.initialise(tmp_path / "keyring.json", master)


@pytest.fixture
def pkcs11_km(softhsm: SoftHsm) -> KeyManager:
    from tsuba.core.keys.pkcs11 import Pkcs11KeyManager

    return Pkcs11KeyManager(softhsm.module, softhsm.label, softhsm.pin)


@pytest.fixture
def vault_stand_in() -> Iterator[tuple[FakeTransit, str]]:
    transit = FakeTransit()
    server = serve(transit)
    try:
        yield transit, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vault_km(vault_stand_in: tuple[FakeTransit, str]) -> KeyManager:
    from tsuba.core.keys.vault import VaultKeyManager

    return VaultKeyManager(vault_stand_in[1], TOKEN)


@pytest.fixture(params=["local", "pkcs11", "vault"])
def any_km(request: pytest.FixtureRequest) -> KeyManager:
    """Each backend in turn (Vault through the stand-in: no Vault binary exists here)."""
    km: KeyManager = request.getfixturevalue(f"{request.param}_km")
    return km


@pytest.fixture
def key_name() -> str:
    """A fresh key name: the SoftHSM2 token is shared by the whole session."""
    return f"k-{uuid.uuid4().hex[:10]}"
