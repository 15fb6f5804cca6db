"""Cached snapshots go stale with the stored policy: across engines, processes and races."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tsuba.core.identity import Authorizer, IdentityService, PolicySnapshot
from tsuba.core.storage import open_engine

CHILD = Path(__file__).with_name("identity_child.py")


@pytest.fixture
def admin(engine: Engine) -> Iterator[IdentityService]:
    with IdentityService(engine, actor="admin") as service:
        service.create_principal("alice", "user")
        service.create_role("reader")
        service.add_permission("reader", "model:invoke", "model/*")
        yield service


@pytest.fixture
def other_engine(db_url: str, engine: Engine) -> Iterator[Engine]:
    """A second engine on the same database, as another process would have."""
    eng = open_engine(db_url)
    yield eng
    eng.dispose()


def test_change_through_another_engine_is_seen_on_next_check(
    admin: IdentityService, other_engine: Engine
) -> None:
    with IdentityService(other_engine, actor="other") as other:
        assert not admin.authorize("alice", "model:invoke", "model/demo").allowed  # now cached
        other.bind("reader", "alice")
        assert admin.authorize("alice", "model:invoke", "model/demo").allowed
        other.add_permission("reader", "model:invoke", "model/demo", effect="deny")
        assert not admin.authorize("alice", "model:invoke", "model/demo").allowed
        other.remove_permission("reader", "model:invoke", "model/demo")
        assert admin.authorize("alice", "model:invoke", "model/demo").allowed
        other.disable_principal("alice")
        assert not admin.authorize("alice", "model:invoke", "model/demo").allowed
        other.enable_principal("alice")
        other.delete_role("reader", force=True)
        assert not admin.authorize("alice", "model:invoke", "model/demo").allowed


def _ask(child: subprocess.Popen[str], line: str) -> dict[str, object]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    answer = child.stdout.readline()
    assert answer, child.stderr.read() if child.stderr else "child exited"
    result: dict[str, object] = json.loads(answer)
    return result


def test_change_in_one_process_is_seen_by_a_warm_cache_in_another(
    admin: IdentityService, db_url: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "check", db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        first = _ask(child, "alice model:invoke model/demo")
        assert first["allowed"] is False
        again = _ask(child, "alice model:invoke model/demo")
        assert again["version"] == first["version"]  # answered from the same snapshot
        admin.bind("reader", "alice")
        after = _ask(child, "alice model:invoke model/demo")
        assert after["allowed"] is True
        assert after["reason"] == "allowed by role 'reader': (model:invoke, model/*)"
        admin.disable_principal("alice")
        assert _ask(child, "alice model:invoke model/demo")["allowed"] is False
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
    assert child.returncode == 0, child.stderr.read() if child.stderr else ""


def test_change_made_by_a_separate_process_is_seen_here(
    admin: IdentityService, db_url: str
) -> None:
    assert not admin.authorize("alice", "model:invoke", "model/demo").allowed
    done = subprocess.run(
        [sys.executable, str(CHILD), "bind", db_url, "reader", "alice"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    decision = admin.authorize("alice", "model:invoke", "model/demo")
    assert decision.allowed and decision.matched_rule is not None
    assert decision.matched_rule.granted_by == "child"


class _RacingAuthorizer(Authorizer):
    """Runs a hook between reading the version and building the snapshot, once."""

    def __init__(self, engine: Engine, hook: object) -> None:
        super().__init__(engine)
        self.hook = hook

    def _load(self, principal: str, version: int) -> PolicySnapshot:
        hook, self.hook = self.hook, None
        if callable(hook):
            return hook(lambda: super(_RacingAuthorizer, self)._load(principal, version))
        return super()._load(principal, version)


def test_change_committed_while_building_is_seen_on_next_check(
    admin: IdentityService, other_engine: Engine
) -> None:
    with IdentityService(other_engine) as other:

        def commit_then_load(load):  # data read after the change, version read before it
            other.bind("reader", "alice")
            return load()

        racing = _RacingAuthorizer(admin.authorizer._engine, commit_then_load)
        with racing:
            assert racing.authorize("alice", "model:invoke", "model/demo").allowed
            other.unbind("reader", "alice")
            assert not racing.authorize("alice", "model:invoke", "model/demo").allowed


def test_stale_snapshot_is_never_cached_under_a_newer_version(
    admin: IdentityService, other_engine: Engine
) -> None:
    with IdentityService(other_engine) as other:
        racing: _RacingAuthorizer

        def load_then_change(load):  # data read before a change another thread then sees
            stale = load()
            other.bind("reader", "alice")
            assert racing.authorize("alice", "model:invoke", "model/demo").allowed
            return stale

        racing = _RacingAuthorizer(admin.authorizer._engine, load_then_change)
        with racing:
            first = racing.authorize("alice", "model:invoke", "model/demo")
            assert not first.allowed  # the slow check answers from what it read
            assert racing.authorize("alice", "model:invoke", "model/demo").allowed


def test_cache_is_bounded(engine: Engine) -> None:
    with Authorizer(engine, max_principals=2) as authz:
        a = authz.snapshot("a")
        assert authz.snapshot("a") is a
        authz.snapshot("b")
        authz.snapshot("c")
        assert authz.snapshot("a") is not a  # evicted, rebuilt


def test_concurrent_checks_and_changes_stay_consistent(admin: IdentityService) -> None:
    admin.bind("reader", "alice")
    errors: list[BaseException] = []
    answers: list[bool] = []
    stop = threading.Event()

    def checker() -> None:
        try:
            while not stop.is_set():
                answers.append(admin.authorize("alice", "model:invoke", "model/x").allowed)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=checker) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(5):
        admin.add_permission("reader", "audit:read", f"log/{i}")
    admin.disable_principal("alice")
    final = admin.authorize("alice", "model:invoke", "model/x")
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert answers and not final.allowed


def test_forked_child_uses_its_own_connections(admin: IdentityService, engine: Engine) -> None:
    import os

    admin.bind("reader", "alice")
    assert admin.authorize("alice", "model:invoke", "model/demo").allowed  # holds a connection
    parents = {id(c) for c in admin.authorizer._conns._idle}
    assert parents
    pid = os.fork()
    if pid == 0:  # child: SQLAlchemy's documented fork practice, then check
        code = 1
        try:
            engine.dispose(close=False)
            ok = admin.authorize("alice", "model:invoke", "model/demo").allowed
            reused = any(id(c) in parents for c in admin.authorizer._conns._idle)
            code = 4 if reused else 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    admin.unbind("reader", "alice")  # the parent's held connection still works
    assert not admin.authorize("alice", "model:invoke", "model/demo").allowed
