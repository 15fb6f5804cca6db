"""Fixtures for model tests: an EC P-256 key, a signer and trust in it, a model folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from model_files import make_model, pem_of

from tsuba.models.sign import PrivateKeySigner, TrustedKey


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def signer(ec_key: ec.EllipticCurvePrivateKey) -> PrivateKeySigner:
    return PrivateKeySigner(ec_key, ref="test key")


@pytest.fixture
def trusted(ec_key: ec.EllipticCurvePrivateKey) -> list[TrustedKey]:
    return [TrustedKey(pem_of(ec_key), "test key")]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")
