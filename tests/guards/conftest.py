"""Fixtures for the guards: a real local key store with the keys the operators use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tsuba.core.keys import KeyKind
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyManager:
    km = LocalKeyManager.initialise(
        tmp_path / "keyring.json", MasterSecret(source="test", key=os.urandom(32))
    )
    km.create("data", KeyKind.AES256_GCM)
    km.create("pseudonym", KeyKind.HMAC_SHA256)
    return km
