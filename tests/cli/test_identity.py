"""``tsuba principal``, ``tsuba role`` and ``tsuba authz`` through the real entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest


@pytest.fixture
def ready(cli, home: Path) -> object:
    res = cli("init")
    assert res.code == 0, res
    return cli


def _one_line_error(res, code: int = 2) -> str:
    assert res.code == code, res
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res
    assert "Traceback" not in res.stderr
    return res.stderr


def test_end_to_end_on_each_backend(cli, home: Path, db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    assert cli("principal", "create", "alice", "--kind", "user").code == 0
    assert cli("role", "create", "reader", "--description", "reads models").code == 0
    assert cli("role", "grant", "reader", "model:invoke", "model/*").code == 0
    assert cli("role", "grant", "reader", "model:invoke", "model/secret", "--deny").code == 0
    assert cli("authz", "check", "alice", "model:invoke", "model/demo").code == 1
    assert cli("role", "bind", "reader", "alice", "--for", "7d", "--by", "carol").code == 0
    ok = cli("authz", "check", "alice", "model:invoke", "model/demo")
    assert ok.code == 0 and ok.stdout.strip() == (
        "allowed: allowed by role 'reader': (model:invoke, model/*)"
    )
    no = cli("authz", "check", "alice", "model:invoke", "model/secret")
    assert no.code == 1 and no.stdout.startswith("denied: denied by role 'reader'")
    why = cli("authz", "explain", "alice", "model:invoke", "model/demo/v2")
    assert why.code == 0
    assert "may alice do model:invoke on model/demo/v2? no" in why.stdout
    assert "a role with permission (model:invoke, model/demo/v2) bound to alice would" in why.stdout


# -- principal -----------------------------------------------------------------------------


def test_principal_commands(ready) -> None:
    cli = ready
    res = cli(
        "principal",
        "create",
        "alice",
        "--kind",
        "user",
        "--display-name",
        "Alice L",
        "--label",
        "team=ml",
        "-f",
        "json",
    )
    assert res.code == 0, res
    data = res.json()
    assert data["name"] == "alice" and data["kind"] == "user" and data["disabled"] is False
    assert data["display_name"] == "Alice L" and data["labels"] == {"team": "ml"}
    assert cli("principal", "create", "build-bot", "--kind", "service").code == 0
    assert cli("principal", "create", "planner", "--kind", "AGENT").code == 0

    listed = cli("principal", "list", "-f", "json")
    assert [p["name"] for p in listed.json()] == ["alice", "build-bot", "planner"]
    assert [
        p["name"] for p in cli("principal", "list", "--kind", "agent", "-f", "json").json()
    ] == ["planner"]
    text = cli("principal", "list")
    assert text.code == 0 and "build-bot" in text.stdout and "service" in text.stdout

    shown = cli("principal", "show", "alice")
    assert shown.code == 0 and "Alice L" in shown.stdout and "bindings:" in shown.stdout

    assert cli("principal", "disable", "alice", "-f", "json").json()["disabled"] is True
    assert cli("principal", "show", "alice", "-f", "json").json()["disabled"] is True
    assert cli("principal", "enable", "alice", "-f", "json").json()["disabled"] is False
    assert cli("principal", "delete", "planner").code == 0
    assert "principal 'planner' does not exist" in _one_line_error(
        cli("principal", "show", "planner")
    )


def test_principal_errors(ready) -> None:
    cli = ready
    assert cli("principal", "create", "alice", "--kind", "user").code == 0
    assert "already exists" in _one_line_error(
        cli("principal", "create", "alice", "--kind", "user")
    )
    assert "principal name" in _one_line_error(
        cli("principal", "create", "Alice", "--kind", "user")
    )
    assert "key=value" in _one_line_error(
        cli("principal", "create", "bob", "--kind", "user", "--label", "oops")
    )
    bad_kind = cli("principal", "create", "bob", "--kind", "robot")
    assert bad_kind.code == 2 and "robot" in bad_kind.stderr
    assert cli("principal", "create", "bob").code == 2  # --kind is required
    for verb in ("disable", "enable", "delete", "show"):
        assert "'ghost' does not exist" in _one_line_error(cli("principal", verb, "ghost"))


# -- role ----------------------------------------------------------------------------------


def test_role_commands(ready) -> None:
    cli = ready
    created = cli("role", "create", "reader", "--description", "reads models", "-f", "json")
    assert created.code == 0 and created.json()["description"] == "reads models"
    grant = cli("role", "grant", "reader", "model:invoke", "model/*", "-f", "json")
    assert grant.code == 0 and grant.json()["effect"] == "allow"
    deny = cli("role", "grant", "reader", "model:invoke", "model/secret", "--deny", "-f", "json")
    assert deny.json()["effect"] == "deny"

    shown = cli("role", "show", "reader", "-f", "json").json()
    assert [(p["effect"], p["resource"]) for p in shown["permissions"]] == [
        ("allow", "model/*"),
        ("deny", "model/secret"),
    ]
    assert shown["bindings"] == []
    text = cli("role", "show", "reader")
    assert "permissions:" in text.stdout and "model/secret" in text.stdout

    listed = cli("role", "list", "-f", "json").json()
    assert [r["name"] for r in listed] == ["reader"] and len(listed[0]["permissions"]) == 2
    assert "reader" in cli("role", "list").stdout

    revoked = cli("role", "revoke", "reader", "model:invoke", "model/secret", "-f", "json")
    assert revoked.code == 0 and revoked.json()["effect"] == "deny"
    assert len(cli("role", "show", "reader", "-f", "json").json()["permissions"]) == 1

    assert cli("role", "create", "spare").code == 0
    assert cli("role", "delete", "spare").code == 0
    assert "role 'spare' does not exist" in _one_line_error(cli("role", "show", "spare"))


def test_role_errors(ready) -> None:
    cli = ready
    assert cli("role", "create", "reader").code == 0
    assert "already exists" in _one_line_error(cli("role", "create", "reader"))
    assert "role name" in _one_line_error(cli("role", "create", "Reader"))
    assert "malformed resource pattern 'model/**/**x'" in _one_line_error(
        cli("role", "grant", "reader", "model:invoke", "model/**/**x")
    )
    assert "action is empty" in _one_line_error(cli("role", "grant", "reader", "", "model/x"))
    assert "malformed action" in _one_line_error(
        cli("role", "grant", "reader", "Model:Invoke", "model/x")
    )
    assert "role 'ghost' does not exist" in _one_line_error(
        cli("role", "grant", "ghost", "model:invoke", "model/x")
    )
    assert "has no permission" in _one_line_error(
        cli("role", "revoke", "reader", "model:invoke", "model/x")
    )
    assert cli("role", "grant", "reader", "model:invoke", "model/x").code == 0
    assert "revoke it before adding deny" in _one_line_error(
        cli("role", "grant", "reader", "model:invoke", "model/x", "--deny")
    )


def test_bind_unbind_and_expiry(ready) -> None:
    cli = ready
    cli("principal", "create", "alice", "--kind", "user")
    cli("role", "create", "reader")
    cli("role", "grant", "reader", "model:invoke", "model/*")
    bound = cli(
        "role",
        "bind",
        "reader",
        "alice",
        "--expires",
        "2099-12-31T00:00Z",
        "--by",
        "carol",
        "-f",
        "json",
    )
    assert bound.code == 0, bound
    data = bound.json()
    assert data["expires_at"] == "2099-12-31T00:00:00Z" and data["granted_by"] == "carol"
    assert "already bound" in _one_line_error(cli("role", "bind", "reader", "alice"))

    after = "2100-01-01T00:00Z"
    late = cli("authz", "check", "alice", "model:invoke", "model/demo", "--at", after)
    assert late.code == 1 and "expired at 2099-12-31T00:00:00Z" in late.stdout
    assert (
        cli(
            "authz", "check", "alice", "model:invoke", "model/demo", "--at", "2099-12-30T23:59Z"
        ).code
        == 0
    )

    shown = cli("principal", "show", "alice", "-f", "json").json()
    assert [b["role"] for b in shown["bindings"]] == ["reader"]

    unbound = cli("role", "unbind", "reader", "alice", "-f", "json")
    assert unbound.code == 0 and unbound.json()["role"] == "reader"
    assert "not bound" in _one_line_error(cli("role", "unbind", "reader", "alice"))

    week = cli("role", "bind", "reader", "alice", "--for", "7d", "-f", "json")
    expires = datetime.fromisoformat(week.json()["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert week.json()["granted_by"].startswith("cli")


def test_bind_errors(ready) -> None:
    cli = ready
    cli("principal", "create", "alice", "--kind", "user")
    cli("role", "create", "reader")
    assert "not both" in _one_line_error(
        cli("role", "bind", "reader", "alice", "--for", "7d", "--expires", "2099-01-01T00:00Z")
    )
    assert "not in the future" in _one_line_error(
        cli("role", "bind", "reader", "alice", "--expires", "2020-01-01T00:00Z")
    )
    assert "no timezone" in _one_line_error(
        cli("role", "bind", "reader", "alice", "--expires", "2099-01-01T00:00")
    )
    assert "invalid duration" in _one_line_error(
        cli("role", "bind", "reader", "alice", "--for", "soon")
    )
    assert "resource pattern" in _one_line_error(
        cli("role", "bind", "reader", "alice", "--scope", "a//b")
    )
    assert "principal 'ghost'" in _one_line_error(cli("role", "bind", "reader", "ghost"))


def test_scoped_binding_and_forced_role_deletion(ready) -> None:
    cli = ready
    cli("principal", "create", "alice", "--kind", "user")
    cli("role", "create", "analyst")
    cli("role", "grant", "analyst", "dataset:read", "dataset/**")
    assert cli("role", "bind", "analyst", "alice", "--scope", "dataset/finance/**").code == 0
    assert cli("authz", "check", "alice", "dataset:read", "dataset/finance/q3").code == 0
    assert cli("authz", "check", "alice", "dataset:read", "dataset/hr/q3").code == 1
    assert "bound to 1 principal" in _one_line_error(cli("role", "delete", "analyst"))
    assert cli("role", "delete", "analyst", "--force").code == 0
    assert cli("authz", "check", "alice", "dataset:read", "dataset/finance/q3").code == 1


# -- authz ---------------------------------------------------------------------------------


def test_authz_check_and_explain(ready) -> None:
    cli = ready
    cli("principal", "create", "alice", "--kind", "user")
    cli("role", "create", "reader")
    cli("role", "grant", "reader", "model:invoke", "model/demo")
    cli("role", "bind", "reader", "alice")

    ok = cli("authz", "check", "alice", "model:invoke", "model/demo", "-f", "json")
    assert ok.code == 0
    assert ok.json()["allowed"] is True and ok.json()["matched_rule"]["role"] == "reader"

    no = cli("authz", "check", "alice", "model:invoke", "model/demo-restricted", "-f", "json")
    assert no.code == 1 and no.json()["allowed"] is False and no.json()["matched_rule"] is None

    unknown = cli("authz", "check", "bob", "model:invoke", "model/demo")
    assert unknown.code == 1 and unknown.stdout.strip() == "denied: unknown principal 'bob'"

    cli("principal", "disable", "alice")
    off = cli("authz", "check", "alice", "model:invoke", "model/demo")
    assert off.code == 1 and "principal 'alice' is disabled" in off.stdout
    cli("principal", "enable", "alice")

    why = cli("authz", "explain", "alice", "model:invoke", "model/demo-restricted", "-f", "json")
    assert why.code == 0
    data = why.json()
    assert data["decision"]["allowed"] is False
    assert data["remedy"] == (
        "no role of 'alice' grants model:invoke on model/demo-restricted; a role with "
        "permission (model:invoke, model/demo-restricted) bound to alice would"
    )
    assert data["considered"] == [
        {
            "rule": {
                "effect": "allow",
                "action": "model:invoke",
                "resource": "model/demo",
                "role": "reader",
                "scope": None,
                "expires_at": None,
                "granted_by": data["considered"][0]["rule"]["granted_by"],
            },
            "applies": False,
            "why": "resource model/demo-restricted does not match 'model/demo'",
        }
    ]
    text = cli("authz", "explain", "alice", "model:invoke", "model/demo")
    assert text.stdout.splitlines()[0] == "may alice do model:invoke on model/demo? yes"
    assert "[applies] allow (model:invoke, model/demo) from role 'reader'" in text.stdout


def test_authz_bad_input(ready) -> None:
    cli = ready
    assert "malformed resource" in _one_line_error(
        cli("authz", "check", "alice", "model:invoke", "model/../x")
    )
    assert "malformed action" in _one_line_error(cli("authz", "check", "alice", "*", "model/x"))
    assert "invalid instant" in _one_line_error(
        cli("authz", "explain", "alice", "model:invoke", "model/x", "--at", "later")
    )


def test_commands_before_init_name_the_fix(cli, home: Path) -> None:
    assert "tsuba init" in _one_line_error(cli("principal", "list"))
    home.mkdir()
    assert "tsuba db upgrade" in _one_line_error(cli("role", "list"))
