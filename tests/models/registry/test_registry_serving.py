"""Serving policy: registered, verified and not quarantined, with a cache of at most 1 s."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tsuba.core.errors import InputError, StorageError
from tsuba.core.events import SecurityEvent, Severity
from tsuba.core.storage import open_engine
from tsuba.models.registry import (
    ModelNotServableError,
    Registry,
    ServingGate,
    ServingPolicy,
    check_integrity,
    ensure_servable,
)
from tsuba.models.sign import ModelIntegrityError, TrustedKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_registered_verified_active_models_are_served(
    add, registry: Registry, engine: Engine
) -> None:
    with pytest.raises(ModelNotServableError, match="ghost may not be served: it is not "
                                                    "registered"):
        ensure_servable("ghost", engine)
    add("llama:1")
    decision = ensure_servable("llama:1", engine)
    assert decision.allowed and decision.version == "1"
    assert ensure_servable("llama", engine).version == "1"  # newest version
    registry.quarantine("llama:1", "backdoor reported")
    with pytest.raises(ModelNotServableError, match="it is quarantined") as caught:
        ensure_servable("llama:1", engine)  # at once in this process, cache or not
    assert caught.value.decision.status == "quarantined"
    assert caught.value.exit_code == 2 and caught.value.code == "model_not_servable"
    with pytest.raises(ModelNotServableError):
        ensure_servable("llama", engine)
    registry.release("llama:1", "false alarm")
    assert ensure_servable("llama", engine).allowed
    add("llama:2")
    registry.retire("llama:2", "withdrawn")
    assert ensure_servable("llama", engine).version == "1"  # newest that is not retired
    with pytest.raises(ModelNotServableError, match="it is retired"):
        ensure_servable("llama:2", engine)
    assert ensure_servable("llama:2", engine, ServingPolicy(block_retired=False)).allowed
    registry.mark_unverified("llama:1")
    with pytest.raises(ModelNotServableError, match="not verified"):
        ensure_servable("llama:1", engine)
    relaxed = ServingPolicy(require_registered=False, require_verified=False)
    assert ensure_servable("ghost", engine, relaxed).allowed
    assert ensure_servable("not a name!", engine, relaxed).allowed
    with pytest.raises(ModelNotServableError, match="not a registered model name"):
        ensure_servable("not a name!", engine)


def test_another_process_sees_a_quarantine_within_its_cache_time(
    add, engine: Engine, db_url: str
) -> None:
    """A gate on a separate engine stands for another process: only its cache delays it."""
    add("m:1")
    elsewhere = open_engine(db_url)
    clock = Clock()
    try:
        gate = ServingGate(elsewhere, ServingPolicy(cache_seconds=1.0), clock=clock)
        assert gate.check("m:1").allowed
        # Another process hears nothing of the change: only the database tells it.
        gate.invalidate = lambda name=None: None  # type: ignore[method-assign]
        other = open_engine(db_url)
        Registry(other, actor="soar").quarantine("m:1", "playbook")
        other.dispose()
        clock.now += 0.5
        assert gate.check("m:1").allowed  # the cached answer, still within one second
        clock.now += 0.5
        assert not gate.check("m:1").allowed  # the second has passed: read again
        uncached = ServingGate(elsewhere, ServingPolicy(cache_seconds=0), clock=clock)
        assert uncached.check("m:1").reason == "it is quarantined"
    finally:
        elsewhere.dispose()
    with pytest.raises(InputError, match="within a second"):
        ServingPolicy(cache_seconds=1.5)


CHILD = r"""
import sys, time
from tsuba.core.storage import open_engine
from tsuba.models.registry import ModelNotServableError, ensure_servable
engine = open_engine(sys.argv[1])
print("served", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        ensure_servable("svc:1", engine)
    except ModelNotServableError as exc:
        print("refused:", exc.decision.reason, flush=True)
        break
    time.sleep(0.01)
"""


def test_a_quarantine_stops_a_serving_process(add, registry: Registry, db_url: str) -> None:
    add("svc:1")
    child = subprocess.Popen([sys.executable, "-c", CHILD, db_url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "served"
        time.sleep(0.2)
        registry.quarantine("svc:1", "incident 42")
        out, err = child.communicate(timeout=90)
    finally:
        child.kill()
    assert out.strip() == "refused: it is quarantined", err


def test_a_failed_registry_read_refuses(add, tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    try:
        with pytest.raises(StorageError, match="model m:1 is refused"):
            ensure_servable("m:1", engine)
    finally:
        engine.dispose()


def test_integrity_check_quarantines_a_tampered_model(
    add, registry: Registry, engine: Engine, trusted: list[TrustedKey],
    events: list[SecurityEvent],
) -> None:
    info = add("m:1").info
    assert check_integrity(registry, "m:1", trusted).ok
    (Path(info.uri) / "tokenizer.json").write_text('{"evil": true}')
    events.clear()
    with pytest.raises(ModelIntegrityError, match="modified: tokenizer"):
        check_integrity(registry, "m:1", trusted)
    after = registry.get("m:1")
    assert after.status == "quarantined" and after.verified_at is None
    assert after.status_reason is not None and "integrity check failed" in after.status_reason
    assert [(e.activity, e.severity) for e in events] == [("update", Severity.HIGH)]
    with pytest.raises(ModelNotServableError):
        ensure_servable("m:1", engine)
