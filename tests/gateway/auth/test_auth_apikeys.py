"""API keys on real SQLite and PostgreSQL: issue, verify, expire, rotate, revoke, tamper."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select, update

from tsuba.core.errors import ConflictError, InputError, NotFoundError
from tsuba.core.events import EventClass, Outcome, SecurityEvent
from tsuba.core.identity import IdentityService
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.storage import Base, open_engine
from tsuba.gateway.auth import ApiKeyService, ApiKeyVerifier, AuthFailure, KeyState
from tsuba.gateway.auth.keyformat import parse_key
from tsuba.gateway.auth.tables import ApiKey, ApiKeyVersion
from tsuba.gateway.auth.verifier import INVALID


def test_schema_matches_the_models_exactly(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(ctx, Base.metadata) if "apikeys_" in repr(d)]
    assert diffs == []


def test_issue_and_verify(
    service: ApiKeyService, verifier: ApiKeyVerifier, engine: Engine,
    events: list[SecurityEvent],
) -> None:
    issued = service.create("alice", ["chat", "embeddings"], datetime.now(UTC) + timedelta(days=1))
    parsed = parse_key(issued.key)
    assert parsed is not None and parsed.prefix == issued.record.prefix
    assert len(parsed.secret) == 43 and issued.signing_secret is None
    assert issued.record.scopes == ("chat", "embeddings")
    assert issued.record.state(datetime.now(UTC)) is KeyState.ACTIVE
    assert parsed.secret not in repr(issued) and parsed.secret not in repr(parsed)

    identity = verifier.verify(issued.key)
    assert (identity.principal, identity.method, identity.credential_id) == (
        "alice", "api_key", issued.record.prefix
    )
    assert identity.scopes == frozenset({"chat", "embeddings"})

    # Stored: only a 32-byte keyed hash, nothing of the secret.
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey).where(ApiKey.prefix == parsed.prefix)).one()
    assert len(row.secret_hash) == 32
    assert parsed.secret not in str(tuple(row)) and parsed.secret.encode() not in row.secret_hash

    # Events: the pepper key's creation, then the key's; never the secret.
    assert [e.resource for e in events] == ["key/apikey-pepper", f"apikey/{parsed.prefix}"]
    created = events[1]
    assert created.event_class is EventClass.ACCOUNT_CHANGE and created.outcome is Outcome.SUCCESS
    assert created.actor == "admin" and created.attributes["principal"] == "alice"
    for e in events:
        assert parsed.secret.encode() not in e.canonical_bytes()


def test_wrong_unknown_and_malformed_keys_get_the_same_message(
    service: ApiKeyService, verifier: ApiKeyVerifier
) -> None:
    issued = service.create("alice")
    parsed = parse_key(issued.key)
    assert parsed is not None
    wrong_secret = f"{parsed.prefix}_{'A' * 43}"
    other = service.create("alice")
    swapped = f"{parsed.prefix}_{parse_key(other.key).secret}"  # type: ignore[union-attr]
    unknown = f"tsk_{'Z' * 13}_{parsed.secret}"
    reasons = {}
    for text in (wrong_secret, swapped, unknown, issued.key[:-1], issued.key + "x", "tsk_", ""):
        with pytest.raises(AuthFailure) as info:
            verifier.verify(text)
        assert info.value.message == INVALID
        assert parsed.secret not in info.value.reason
        reasons[text] = info.value.reason
    assert reasons[wrong_secret] == reasons[swapped] == "API key secret does not match"
    assert reasons[unknown] == "unknown API key prefix"
    assert reasons[issued.key[:-1]] == "malformed API key"
    assert verifier.verify(issued.key).principal == "alice"  # still fine


_WELL_FORMED = st.from_regex(r"tsk_[0-9A-Za-z]{13}_[0-9A-Za-z]{43}", fullmatch=True)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=120) | _WELL_FORMED)
def test_arbitrary_text_is_refused_cleanly(sqlite_engine: Engine, text: str) -> None:
    # A keyring per example would be slow: the verifier needs none until a prefix exists.
    verifier = ApiKeyVerifier(sqlite_engine, keys=None)  # type: ignore[arg-type]
    try:
        with pytest.raises(AuthFailure) as info:
            verifier.verify(text)
        assert info.value.message == INVALID
    finally:
        verifier.close()


def test_expired_key_is_refused(
    service: ApiKeyService, engine: Engine, keys: LocalKeyManager
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    issued = service.create("alice", expires_at=expires)
    later = ApiKeyVerifier(engine, keys, clock=lambda: expires.timestamp() + 1)
    try:
        with pytest.raises(AuthFailure, match="expired at") as info:
            later.verify(issued.key)
        assert info.value.reason == "expired API key"
        assert info.value.credential_id == issued.record.prefix
    finally:
        later.close()


def test_revocation_is_seen_by_a_warm_cache_on_the_next_request(
    service: ApiKeyService, verifier: ApiKeyVerifier, db_url: str, keys: LocalKeyManager,
    events: list[SecurityEvent],
) -> None:
    issued = service.create("alice")
    assert verifier.verify(issued.key).principal == "alice"  # now cached
    # Revoked through another engine, as another process would.
    other = open_engine(db_url)
    try:
        record = ApiKeyService(other, keys, actor="ops").revoke(issued.record.prefix)
    finally:
        other.dispose()
    assert record.status == "revoked" and record.revoked_at is not None
    with pytest.raises(AuthFailure, match="is revoked") as info:
        verifier.verify(issued.key)
    assert info.value.reason == "revoked API key"
    with pytest.raises(ConflictError, match="already revoked"):
        service.revoke(issued.record.prefix)


def test_rotation_keeps_the_old_key_until_the_grace_ends(
    service: ApiKeyService, verifier: ApiKeyVerifier, engine: Engine, keys: LocalKeyManager,
    events: list[SecurityEvent],
) -> None:
    old = service.create(
        "alice", ["chat"], datetime.now(UTC) + timedelta(days=10), description="ci"
    )
    assert verifier.verify(old.key).credential_id == old.record.prefix
    new = service.rotate(old.record.prefix, grace=timedelta(hours=1))
    assert new.record.replaces == old.record.prefix and new.record.scopes == ("chat",)
    assert new.record.description == "ci"
    lifetime = new.record.expires_at - new.record.created_at  # type: ignore[operator]
    assert timedelta(days=10) - timedelta(seconds=5) < lifetime <= timedelta(days=10)
    # Both work during the grace period.
    assert verifier.verify(old.key).principal == verifier.verify(new.key).principal == "alice"
    old_record = service.get(old.record.prefix)
    assert old_record.replaced_by == new.record.prefix
    assert old_record.state(datetime.now(UTC)) is KeyState.ROTATING
    grace_end = old_record.expires_at
    assert grace_end is not None
    assert grace_end - datetime.now(UTC) <= timedelta(hours=1)
    # After the grace period only the new key works.
    after = ApiKeyVerifier(engine, keys, clock=lambda: grace_end.timestamp() + 1)
    try:
        with pytest.raises(AuthFailure, match="rotated and its grace period ended"):
            after.verify(old.key)
        assert after.verify(new.key).credential_id == new.record.prefix
    finally:
        after.close()
    with pytest.raises(ConflictError, match="already rotated"):
        service.rotate(old.record.prefix)
    assert events[-1].attributes["change"] == "rotate"
    assert events[-1].attributes["successor"]["prefix"] == new.record.prefix


def test_rotation_without_grace_ends_the_old_key_now(
    service: ApiKeyService, verifier: ApiKeyVerifier
) -> None:
    old = service.create("alice")
    new = service.rotate(old.record.prefix, grace=timedelta(0), expires_at=None)
    assert new.record.expires_at is None
    with pytest.raises(AuthFailure, match="grace period ended"):
        verifier.verify(old.key)
    assert verifier.verify(new.key).principal == "alice"


def test_disabled_or_deleted_principal_is_refused(
    service: ApiKeyService, verifier: ApiKeyVerifier, identity: IdentityService
) -> None:
    issued = service.create("build-bot")
    assert verifier.verify(issued.key).principal == "build-bot"
    identity.disable_principal("build-bot")
    with pytest.raises(AuthFailure, match=r"principal of API key .* is disabled"):
        verifier.verify(issued.key)
    with pytest.raises(ConflictError, match="disabled"):
        service.create("build-bot")
    identity.enable_principal("build-bot")
    assert verifier.verify(issued.key).principal == "build-bot"
    identity.delete_principal("build-bot")  # its keys go with it
    with pytest.raises(AuthFailure) as info:
        verifier.verify(issued.key)
    assert info.value.reason == "unknown API key prefix"
    assert service.list_keys() == []


def test_bad_requests_to_the_service(service: ApiKeyService) -> None:
    with pytest.raises(NotFoundError, match="principal 'nobody' does not exist"):
        service.create("nobody")
    with pytest.raises(InputError, match="invalid scope"):
        service.create("alice", ["Chat Completions"])
    with pytest.raises(InputError, match="too many scopes"):
        service.create("alice", [f"s{i}" for i in range(40)])
    with pytest.raises(InputError, match="not in the future"):
        service.create("alice", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InputError, match="timezone"):
        service.create("alice", expires_at=datetime(2099, 1, 1))
    with pytest.raises(InputError, match="not an API key prefix id"):
        service.revoke("alice")
    with pytest.raises(NotFoundError, match="does not exist"):
        service.revoke("tsk_" + "0" * 13)
    with pytest.raises(InputError, match="grace"):
        service.rotate("tsk_" + "0" * 13, grace=timedelta(days=31))
    assert service.list_keys() == []


def test_list_and_get(service: ApiKeyService) -> None:
    a = service.create("alice", ["chat"])
    b = service.create("build-bot")
    service.revoke(b.record.prefix)
    assert [r.prefix for r in service.list_keys()] == [a.record.prefix, b.record.prefix]
    assert [r.prefix for r in service.list_keys(principal="build-bot")] == [b.record.prefix]
    shown = service.get(b.record.prefix).to_dict(datetime.now(UTC))
    assert shown["state"] == "revoked" and "secret_hash" not in shown
    with pytest.raises(NotFoundError):
        service.list_keys(principal="nobody")


def test_a_hash_planted_in_the_database_does_not_make_a_key(
    service: ApiKeyService, verifier: ApiKeyVerifier, engine: Engine
) -> None:
    import hashlib

    a = service.create("alice")
    b = service.create("build-bot")
    pa, pb = parse_key(a.key), parse_key(b.key)
    assert pa is not None and pb is not None
    with engine.begin() as conn:
        hash_a = conn.execute(
            select(ApiKey.secret_hash).where(ApiKey.prefix == pa.prefix)
        ).scalar_one()
        # Move alice's hash onto build-bot's row: alice's secret must not open build-bot.
        conn.execute(update(ApiKey).where(ApiKey.prefix == pb.prefix).values(secret_hash=hash_a))
    verifier.invalidate()
    with pytest.raises(AuthFailure, match="invalid API key"):
        verifier.verify(f"{pb.prefix}_{pa.secret}")
    # A plain SHA-256 of a secret of one's choosing does not work either (pepper).
    chosen = "C" * 43
    with engine.begin() as conn:
        conn.execute(
            update(ApiKey).where(ApiKey.prefix == pb.prefix)
            .values(secret_hash=hashlib.sha256(f"{pb.prefix}\x00{chosen}".encode()).digest())
        )
    verifier.invalidate()
    with pytest.raises(AuthFailure, match="invalid API key"):
        verifier.verify(f"{pb.prefix}_{chosen}")


def test_rotating_the_pepper_key_retires_older_api_keys(
    service: ApiKeyService, engine: Engine, keys: LocalKeyManager
) -> None:
    old = service.create("alice")
    keys.rotate("apikey-pepper")
    new = service.create("alice")
    fresh = ApiKeyVerifier(engine, keys)  # a process started after the rotation
    try:
        assert fresh.verify(new.key).principal == "alice"
        for _ in range(2):  # the second refusal comes from memory, not the key store
            with pytest.raises(AuthFailure, match="can no longer be verified") as info:
                fresh.verify(old.key)
            assert "version 1 of key 'apikey-pepper'" in info.value.reason
    finally:
        fresh.close()


def test_cache_answers_until_the_stored_version_moves(
    service: ApiKeyService, verifier: ApiKeyVerifier, engine: Engine
) -> None:
    issued = service.create("alice")
    verifier.verify(issued.key)  # warm
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            verifier.verify(issued.key)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []  # no row loads: only the version read, on the driver's cursor
    # A row changed behind the service's back (no version bump) is not seen...
    with engine.begin() as conn:
        conn.execute(
            update(ApiKey).where(ApiKey.prefix == issued.record.prefix).values(status="revoked")
        )
    assert verifier.verify(issued.key).principal == "alice"
    # ...until the version moves, which every change through the service does.
    with engine.begin() as conn:
        conn.execute(update(ApiKeyVersion).values(version=ApiKeyVersion.version + 1))
    with pytest.raises(AuthFailure, match="revoked"):
        verifier.verify(issued.key)


def test_version_reads_may_be_reused_for_at_most_a_second(
    service: ApiKeyService, engine: Engine, keys: LocalKeyManager
) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ApiKeyVerifier(engine, keys, revocation_check_seconds=1.5)
    issued = service.create("alice")
    v = ApiKeyVerifier(engine, keys, revocation_check_seconds=0.2)
    try:
        assert v.verify(issued.key).principal == "alice"
        service.revoke(issued.record.prefix)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                v.verify(issued.key)
            except AuthFailure as exc:
                assert exc.reason == "revoked API key"
                break
            time.sleep(0.05)
        else:
            pytest.fail("a revoked key was still accepted after 5 s")
    finally:
        v.close()


def test_last_used_is_stamped_at_most_once_per_interval(
    service: ApiKeyService, verifier: ApiKeyVerifier
) -> None:
    issued = service.create("alice")
    assert service.get(issued.record.prefix).last_used_at is None
    verifier.verify(issued.key)
    verifier.verify(issued.key)
    assert verifier.flush_last_used() in (0, 1)  # the background flusher may have run first
    stamped = service.get(issued.record.prefix).last_used_at
    assert stamped is not None and abs(stamped - datetime.now(UTC)) < timedelta(minutes=1)
    verifier.verify(issued.key)
    assert verifier.flush_last_used() == 0  # within the interval: nothing to write
    version = service.revocation_version()
    verifier.verify(issued.key)
    assert service.revocation_version() == version  # stamping never empties caches
