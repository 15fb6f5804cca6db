"""The identity service on real SQLite and PostgreSQL: changes, errors, events, decisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete

from tsuba.core.errors import ConflictError, InputError, NotFoundError, StorageError
from tsuba.core.events import EventClass, Outcome, SecurityEvent
from tsuba.core.identity import Effect, IdentityService, PrincipalKind
from tsuba.core.identity.models import PolicyVersion
from tsuba.core.storage import open_engine


@pytest.fixture
def events() -> list[SecurityEvent]:
    return []


@pytest.fixture
def svc(engine: Engine, events: list[SecurityEvent]) -> Iterator[IdentityService]:
    with IdentityService(engine, emit=events.append, actor="admin") as service:
        yield service



# -- principals ----------------------------------------------------------------------------


def test_principal_lifecycle(svc: IdentityService, events: list[SecurityEvent]) -> None:
    p = svc.create_principal("alice", "user", display_name="Alice Liddell", labels={"team": "ml"})
    assert (p.name, p.kind, p.display_name, p.disabled) == (
        "alice",
        PrincipalKind.USER,
        "Alice Liddell",
        False,
    )
    assert p.labels == {"team": "ml"} and p.created_at.tzinfo is not None
    svc.create_principal("build-bot", PrincipalKind.SERVICE)
    svc.create_principal("planner", "agent")
    assert svc.get_principal("alice") == p
    assert [x.name for x in svc.list_principals()] == ["alice", "build-bot", "planner"]
    assert [x.name for x in svc.list_principals(kind="agent")] == ["planner"]
    assert svc.disable_principal("alice").disabled
    assert svc.get_principal("alice").disabled
    assert not svc.enable_principal("alice").disabled
    assert svc.delete_principal("planner").name == "planner"
    with pytest.raises(NotFoundError, match="principal 'planner' does not exist"):
        svc.get_principal("planner")

    kinds = [(e.event_class, e.activity, e.resource) for e in events]
    assert kinds == [
        (EventClass.ACCOUNT_CHANGE, "create", "principal/alice"),
        (EventClass.ACCOUNT_CHANGE, "create", "principal/build-bot"),
        (EventClass.ACCOUNT_CHANGE, "create", "principal/planner"),
        (EventClass.ACCOUNT_CHANGE, "update", "principal/alice"),
        (EventClass.ACCOUNT_CHANGE, "update", "principal/alice"),
        (EventClass.ACCOUNT_CHANGE, "delete", "principal/planner"),
    ]
    assert all(e.actor == "admin" and e.outcome is Outcome.SUCCESS for e in events)
    assert events[3].attributes["change"] == "disable"
    assert events[4].attributes["change"] == "enable"
    assert events[0].attributes["principal"]["labels"] == {"team": "ml"}


def test_principal_bad_input(svc: IdentityService, events: list[SecurityEvent]) -> None:
    svc.create_principal("alice", "user")
    with pytest.raises(ConflictError, match="principal 'alice' already exists"):
        svc.create_principal("alice", "service")
    with pytest.raises(InputError, match="unknown principal kind 'robot'"):
        svc.create_principal("bob", "robot")
    with pytest.raises(InputError, match="principal name"):
        svc.create_principal("Bob", "user")
    with pytest.raises(InputError, match="label key"):
        svc.create_principal("bob", "user", labels={"Bad Key": "x"})
    with pytest.raises(InputError, match="display name"):
        svc.create_principal("bob", "user", display_name="x\n")
    with pytest.raises(NotFoundError, match="principal 'ghost' does not exist"):
        svc.disable_principal("ghost")
    assert len(events) == 1  # failed changes emit nothing


# -- roles and permissions -----------------------------------------------------------------


def test_roles_and_permissions(svc: IdentityService, events: list[SecurityEvent]) -> None:
    r = svc.create_role("reader", description="reads models")
    assert (r.name, r.description, r.permissions) == ("reader", "reads models", ())
    allow = svc.add_permission("reader", "model:invoke", "model/*")
    deny = svc.add_permission("reader", "model:invoke", "model/secret", effect="deny")
    assert (allow.effect, deny.effect) == (Effect.ALLOW, Effect.DENY)
    got = svc.get_role("reader")
    assert [(p.effect, p.action, p.resource) for p in got.permissions] == [
        (Effect.ALLOW, "model:invoke", "model/*"),
        (Effect.DENY, "model:invoke", "model/secret"),
    ]
    svc.create_role("auditor")
    assert [x.name for x in svc.list_roles()] == ["auditor", "reader"]
    removed = svc.remove_permission("reader", "model:invoke", "model/secret")
    assert removed.effect is Effect.DENY
    assert len(svc.get_role("reader").permissions) == 1
    assert svc.delete_role("auditor").name == "auditor"
    assert [x.name for x in svc.list_roles()] == ["reader"]
    assert [(e.event_class, e.activity, e.resource) for e in events] == [
        (EventClass.ENTITY_MANAGEMENT, "create", "role/reader"),
        (EventClass.ENTITY_MANAGEMENT, "update", "role/reader"),
        (EventClass.ENTITY_MANAGEMENT, "update", "role/reader"),
        (EventClass.ENTITY_MANAGEMENT, "create", "role/auditor"),
        (EventClass.ENTITY_MANAGEMENT, "update", "role/reader"),
        (EventClass.ENTITY_MANAGEMENT, "delete", "role/auditor"),
    ]
    assert events[2].attributes["permission"]["effect"] == "deny"
    assert events[4].attributes["change"] == "revoke"


def test_role_and_permission_bad_input(svc: IdentityService) -> None:
    svc.create_role("reader")
    with pytest.raises(ConflictError, match="role 'reader' already exists"):
        svc.create_role("reader")
    with pytest.raises(InputError, match="role name"):
        svc.create_role("Reader")
    with pytest.raises(NotFoundError, match="role 'nope' does not exist"):
        svc.add_permission("nope", "model:invoke", "model/x")
    with pytest.raises(InputError, match="action is empty"):
        svc.add_permission("reader", "", "model/x")
    with pytest.raises(InputError, match="malformed resource pattern 'model/\\*\\*/\\*\\*x'"):
        svc.add_permission("reader", "model:invoke", "model/**/**x")
    with pytest.raises(InputError, match="unknown effect"):
        svc.add_permission("reader", "model:invoke", "model/x", effect="maybe")
    svc.add_permission("reader", "model:invoke", "model/x")
    with pytest.raises(ConflictError, match="already has allow"):
        svc.add_permission("reader", "model:invoke", "model/x")
    with pytest.raises(ConflictError, match="revoke it before adding deny"):
        svc.add_permission("reader", "model:invoke", "model/x", effect=Effect.DENY)
    with pytest.raises(NotFoundError, match=r"role 'reader' has no permission \(a:b, model/y\)"):
        svc.remove_permission("reader", "a:b", "model/y")


def test_deleting_a_bound_role_needs_force(svc: IdentityService) -> None:
    svc.create_principal("alice", "user")
    svc.create_role("block")
    svc.add_permission("block", "*", "**", effect="deny")
    svc.bind("block", "alice")
    with pytest.raises(ConflictError, match="bound to 1 principal"):
        svc.delete_role("block")
    assert svc.list_bindings(principal="alice")
    svc.delete_role("block", force=True)
    assert svc.list_bindings(principal="alice") == []


# -- bindings ------------------------------------------------------------------------------


def test_bindings(svc: IdentityService, events: list[SecurityEvent]) -> None:
    svc.create_principal("alice", "user")
    svc.create_principal("bob", "user")
    svc.create_role("reader")
    svc.create_role("writer")
    expiry = datetime(2099, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    b = svc.bind("reader", "alice", expires_at=expiry, granted_by="carol")
    assert b.expires_at == datetime(2099, 1, 1, 0, 0, tzinfo=UTC)
    assert (b.granted_by, b.scope) == ("carol", None)
    svc.bind("writer", "alice", scope="model/finance/**")
    svc.bind("reader", "bob")
    listed = svc.list_bindings()
    assert [(x.principal, x.role) for x in listed] == [
        ("alice", "reader"),
        ("alice", "writer"),
        ("bob", "reader"),
    ]
    assert listed[0].expires_at == b.expires_at  # round-trips as aware UTC on both backends
    assert listed[1].scope == "model/finance/**" and listed[1].granted_by == "admin"
    assert [x.principal for x in svc.list_bindings(role="reader")] == ["alice", "bob"]
    assert svc.unbind("writer", "alice", scope="model/finance/**").role == "writer"
    assert [x.role for x in svc.list_bindings(principal="alice")] == ["reader"]
    svc.delete_principal("alice")
    assert [x.principal for x in svc.list_bindings()] == ["bob"]

    bind_events = [e for e in events if e.resource and e.resource.startswith("binding/")]
    assert [(e.activity, e.resource, e.actor) for e in bind_events] == [
        ("create", "binding/reader/alice", "carol"),
        ("create", "binding/writer/alice", "admin"),
        ("create", "binding/reader/bob", "admin"),
        ("delete", "binding/writer/alice", "admin"),
    ]
    assert bind_events[0].attributes["binding"]["expires_at"] == "2099-01-01T00:00:00Z"


def test_binding_bad_input(svc: IdentityService) -> None:
    svc.create_principal("alice", "user")
    svc.create_role("reader")
    with pytest.raises(NotFoundError, match="principal 'ghost'"):
        svc.bind("reader", "ghost")
    with pytest.raises(NotFoundError, match="role 'ghost'"):
        svc.bind("ghost", "alice")
    with pytest.raises(InputError, match="not in the future"):
        svc.bind("reader", "alice", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InputError, match="timezone"):
        svc.bind("reader", "alice", expires_at=datetime(2099, 1, 1))
    with pytest.raises(InputError, match="resource pattern"):
        svc.bind("reader", "alice", scope="model//x")
    with pytest.raises(InputError, match="actor"):
        svc.bind("reader", "alice", granted_by="")
    svc.bind("reader", "alice")
    with pytest.raises(ConflictError, match="already bound to 'alice': unbind it first"):
        svc.bind("reader", "alice")
    svc.bind("reader", "alice", scope="model/**")  # a different scope is a different binding
    with pytest.raises(NotFoundError, match="not bound to 'alice' within scope 'dataset/\\*\\*'"):
        svc.unbind("reader", "alice", scope="dataset/**")
    with pytest.raises(NotFoundError, match="principal 'ghost'"):
        svc.list_bindings(principal="ghost")


# -- decisions through storage -------------------------------------------------------------


def test_authorize_through_storage(svc: IdentityService) -> None:
    svc.create_principal("alice", "user")
    svc.create_role("reader")
    svc.add_permission("reader", "model:invoke", "model/*")
    svc.add_permission("reader", "model:invoke", "model/secret", effect="deny")
    assert not svc.authorize("alice", "model:invoke", "model/demo").allowed  # not bound yet
    svc.bind("reader", "alice", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert svc.authorize("alice", "model:invoke", "model/demo").allowed
    assert not svc.authorize("alice", "model:invoke", "model/secret").allowed
    later = datetime.now(UTC) + timedelta(hours=2)
    expired = svc.authorize("alice", "model:invoke", "model/demo", at=later)
    assert not expired.allowed and "expired" in expired.reason
    assert svc.authorize("ghost", "model:invoke", "model/demo").reason == (
        "unknown principal 'ghost'"
    )
    svc.disable_principal("alice")
    assert svc.authorize("alice", "model:invoke", "model/demo").reason == (
        "principal 'alice' is disabled"
    )
    svc.enable_principal("alice")
    e = svc.explain("alice", "model:invoke", "model/demo/v2")
    assert e.remedy is not None and "(model:invoke, model/demo/v2) bound to alice" in e.remedy
    assert [b.role for b in e.bindings] == ["reader"]
    with pytest.raises(InputError, match="malformed resource"):
        svc.authorize("alice", "model:invoke", "model/../secret")
    with pytest.raises(InputError, match="action is empty"):
        svc.authorize("alice", "", "model/demo")
    with pytest.raises(InputError, match="timezone"):
        svc.authorize("alice", "model:invoke", "model/demo", at=datetime(2030, 1, 1))


def test_every_change_bumps_the_version_once_and_failures_do_not(svc: IdentityService) -> None:
    v0 = svc.policy_version()
    svc.create_principal("alice", "user")
    svc.create_role("reader")
    svc.add_permission("reader", "a:b", "x")
    svc.bind("reader", "alice")
    assert svc.policy_version() == v0 + 4
    with pytest.raises(ConflictError):
        svc.create_role("reader")
    with pytest.raises(NotFoundError):
        svc.unbind("reader", "ghost")
    assert svc.policy_version() == v0 + 4


def test_snapshot_is_reused_until_the_policy_changes(svc: IdentityService) -> None:
    svc.create_principal("alice", "user")
    first = svc.authorizer.snapshot("alice")
    assert svc.authorizer.snapshot("alice") is first
    svc.create_role("unrelated")
    assert svc.authorizer.snapshot("alice") is not first


def test_unmigrated_database_fails_closed(db_url: str) -> None:
    eng = open_engine(db_url)
    try:
        with IdentityService(eng) as service, pytest.raises(StorageError, match="not usable"):
            service.authorize("alice", "model:invoke", "model/demo")
    finally:
        eng.dispose()


def test_missing_version_row_fails_closed(engine: Engine, svc: IdentityService) -> None:
    with engine.begin() as conn:
        conn.execute(delete(PolicyVersion))
    with pytest.raises(StorageError, match="version row is missing"):
        svc.authorize("alice", "model:invoke", "model/demo")
    with pytest.raises(StorageError, match="version row is missing"):
        svc.create_role("reader")
    assert svc.list_roles() == []  # the failed change was rolled back
