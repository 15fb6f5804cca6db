"""Fixtures for the audit log: a real Ed25519 key, and a log on each database backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from tsuba.core.audit import AuditLog, PrivateKeySigner
from tsuba.core.events import SecurityEvent

EventFactory = Callable[..., SecurityEvent]


def make_event(i: int = 0, **fields: object) -> SecurityEvent:
    data: dict[str, object] = {
        "class": "api_activity",
        "message": f"request {i}",
        "severity": "info",
        "actor": "alice",
        "resource": "model/gpt",
        **fields,
    }
    return SecurityEvent.from_dict(data)


@pytest.fixture
def event() -> EventFactory:
    return make_event


@pytest.fixture
def signer() -> PrivateKeySigner:
    """A real Ed25519 key from ``cryptography``, held in memory."""
    return PrivateKeySigner.generate()


@pytest.fixture
def audit_log(engine: Engine, signer: PrivateKeySigner) -> Iterator[AuditLog]:
    log = AuditLog(engine, signer)
    yield log
    log.close()
