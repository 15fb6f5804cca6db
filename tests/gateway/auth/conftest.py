"""Fixtures for gateway authentication: a real local keyring, principals, API key service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tsuba.core.events import SecurityEvent
from tsuba.core.identity import IdentityService
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.gateway.auth import ApiKeyService, ApiKeyVerifier


@pytest.fixture
def master() -> MasterSecret:
    return MasterSecret(source="test", key=os.urandom(32))


@pytest.fixture
def keys(tmp_path: Path, master: MasterSecret) -> LocalKeyManager:
    return LocalKeyManager.initialise(tmp_path / "keyring.json", master)


@pytest.fixture
def events() -> list[SecurityEvent]:
    return []


@pytest.fixture
def identity(engine: Engine) -> Iterator[IdentityService]:
    with IdentityService(engine, actor="admin") as service:
        service.create_principal("alice", "user")
        service.create_principal("build-bot", "service")
        yield service


@pytest.fixture
def service(
    engine: Engine, keys: LocalKeyManager, identity: IdentityService,
    events: list[SecurityEvent],
) -> ApiKeyService:
    return ApiKeyService(engine, keys, emit=events.append, actor="admin")


@pytest.fixture
def verifier(engine: Engine, keys: LocalKeyManager) -> Iterator[ApiKeyVerifier]:
    v = ApiKeyVerifier(engine, keys)
    yield v
    v.close()
