"""``tsuba apikeys`` through the real entry point; the keys it prints really authenticate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tsuba.core.config import load_settings
from tsuba.core.keys import open_key_manager
from tsuba.core.storage import open_engine
from tsuba.gateway.auth import ApiKeyVerifier, AuthFailure


@contextmanager
def _verifier(home: Path) -> Iterator[ApiKeyVerifier]:
    settings = load_settings(home)
    engine = open_engine(settings.sqlalchemy_url)
    verifier = ApiKeyVerifier(engine, open_key_manager(settings))
    try:
        yield verifier
    finally:
        verifier.close()
        engine.dispose()


def _one_line_error(res, code: int = 2) -> str:
    assert res.code == code, res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res
    return res.stderr


def _audit(cli, count: int = 20) -> list[dict]:
    res = cli("audit", "tail", "-n", str(count), "--format", "json")
    assert res.code == 0, res
    return [row["event"] for row in res.json()]


def test_create_list_rotate_revoke_on_each_backend(
    cli, home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    assert cli("principal", "create", "alice", "--kind", "user").code == 0

    res = cli("apikeys", "create", "--principal", "alice", "--scopes", "chat,embeddings",
              "--expires", "30d", "--format", "json")
    assert res.code == 0, res
    created = res.json()
    key, prefix = created["key"], created["prefix"]
    assert key.startswith(prefix + "_") and created["scopes"] == ["chat", "embeddings"]
    assert created["signing_secret"] is None and created["state"] == "active"
    expires = datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    with _verifier(home) as verifier:
        assert verifier.verify(key).principal == "alice"

    listed = cli("apikeys", "list", "--format", "json")
    assert [r["prefix"] for r in listed.json()] == [prefix]
    assert key.rsplit("_", 1)[1] not in listed.stdout  # the secret is never shown again
    text = cli("apikeys", "list")
    assert text.code == 0 and "alice" in text.stdout and "active" in text.stdout

    rotated = cli("apikeys", "rotate", prefix, "--grace", "1h", "--format", "json")
    assert rotated.code == 0, rotated
    successor = rotated.json()
    assert successor["replaces"] == prefix and successor["key"] != key
    with _verifier(home) as verifier:
        assert verifier.verify(key).principal == "alice"  # within the grace period
        assert verifier.verify(successor["key"]).principal == "alice"
    shown = cli("apikeys", "show", prefix, "--format", "json").json()
    assert shown["state"] == "rotating" and shown["replaced_by"] == successor["prefix"]

    revoked = cli("apikeys", "revoke", successor["prefix"], "--format", "json")
    assert revoked.code == 0 and revoked.json()["state"] == "revoked"
    with _verifier(home) as verifier, pytest.raises(AuthFailure, match="revoked"):
        verifier.verify(successor["key"])

    events = [e for e in _audit(cli) if e["resource"].startswith("apikey/")]
    assert [e["activity"] for e in events] == ["create", "update", "disable"]
    assert all(e["class"] == "account_change" for e in events)
    for e in _audit(cli):
        assert key.rsplit("_", 1)[1] not in str(e) and successor["key"] not in str(e)


def test_text_output_prints_the_key_once(cli, home: Path) -> None:
    assert cli("init").code == 0
    assert cli("principal", "create", "build-bot", "--kind", "service").code == 0
    res = cli("apikeys", "create", "--principal", "build-bot", "--signing", "--expires", "never")
    assert res.code == 0, res
    lines = res.stdout.splitlines()
    key_lines = [line for line in lines if line.startswith("key: tsk_")]
    secret_lines = [line for line in lines if line.startswith("signing secret: tss_")]
    assert len(key_lines) == 1 and len(secret_lines) == 1
    assert "tsuba keeps only its hash" in res.stderr


def test_errors_are_one_line(cli, home: Path) -> None:
    assert cli("init").code == 0
    assert cli("principal", "create", "alice", "--kind", "user").code == 0
    assert "principal 'ghost' does not exist" in _one_line_error(
        cli("apikeys", "create", "--principal", "ghost")
    )
    assert "invalid --expires 'tomorrow'" in _one_line_error(
        cli("apikeys", "create", "--principal", "alice", "--expires", "tomorrow")
    )
    assert "not in the future" in _one_line_error(
        cli("apikeys", "create", "--principal", "alice", "--expires", "2001-01-01T00:00Z")
    )
    assert "invalid scope" in _one_line_error(
        cli("apikeys", "create", "--principal", "alice", "--scopes", "Bad Scope")
    )
    assert "not an API key prefix id" in _one_line_error(cli("apikeys", "revoke", "oops"))
    assert "does not exist" in _one_line_error(cli("apikeys", "revoke", "tsk_" + "0" * 13))
    created = cli("apikeys", "create", "--principal", "alice", "-f", "json").json()
    assert "invalid duration" in _one_line_error(
        cli("apikeys", "rotate", created["prefix"], "--grace", "soon")
    )
    assert cli("apikeys", "revoke", created["prefix"]).code == 0
    assert "already revoked" in _one_line_error(cli("apikeys", "revoke", created["prefix"]))
    assert "is revoked" in _one_line_error(cli("apikeys", "rotate", created["prefix"]))
    assert cli("apikeys", "list", "--principal", "alice", "-f", "json").code == 0
