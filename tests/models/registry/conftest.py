"""A registry on each database backend, the events it emits, and a signing key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from model_files import make_model, pem_of
from sqlalchemy import Engine

from tsuba.core.events import SecurityEvent
from tsuba.models.registry import Registry, register_model
from tsuba.models.registry.register import Registration
from tsuba.models.sign import PrivateKeySigner, TrustedKey


@pytest.fixture
def events() -> list[SecurityEvent]:
    return []


@pytest.fixture
def registry(engine: Engine, events: list[SecurityEvent]) -> Registry:
    return Registry(engine, actor="cli:tester", emit=events.append)


@pytest.fixture
def add(registry: Registry, signer: PrivateKeySigner, tmp_path: Path):
    """Register a fresh small model as NAME:VERSION (scanning off: see the scan tests)."""

    def register(ref: str, **kwargs) -> Registration:
        name, version = ref.split(":")
        path = make_model(tmp_path / ref.replace("/", "_").replace(":", "@"), big=20_000)
        kwargs.setdefault("scan", False)
        return register_model(registry, name, version, path, signer=signer, **kwargs)

    return register


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def signer(ec_key: ec.EllipticCurvePrivateKey) -> PrivateKeySigner:
    return PrivateKeySigner(ec_key, ref="test key")


@pytest.fixture
def trusted(ec_key: ec.EllipticCurvePrivateKey) -> list[TrustedKey]:
    return [TrustedKey(pem_of(ec_key), "test key")]
