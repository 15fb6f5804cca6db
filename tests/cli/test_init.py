"""``tsuba init`` through the real entry point."""

from __future__ import annotations

import stat
from pathlib import Path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_text(cli, home: Path) -> None:
    res = cli("init")
    assert res.code == 0, res
    assert f"created  {home / 'keyring.json'}" in res.stdout
    assert "key      audit-signing created" in res.stdout
    assert f"tsuba data directory ready at {home}" in res.stdout
    assert _mode(home) == 0o700
    assert all(_mode(home / n) == 0o600 for n in ("tsuba.toml", "master.key", "keyring.json"))


def test_init_json_and_home_option(cli, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    res = cli("init", "--home", str(target), "--format", "json")
    assert res.code == 0, res
    data = res.json()
    assert data["home"] == str(target)
    assert str(target / "master.key") in data["created"]
    assert sorted(data["keys_created"]) == ["audit-signing", "data"]
    assert data["schema"] and data["database"].startswith("sqlite:///")


def test_second_init_is_one_line_error(cli, home: Path) -> None:
    assert cli("init").code == 0
    keyring = (home / "keyring.json").read_bytes()
    res = cli("init")
    assert res.code == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert f"data directory {home} is already initialised" in res.stderr
    assert "--force" in res.stderr
    assert (home / "keyring.json").read_bytes() == keyring


def test_force_keeps_the_signing_key(cli, home: Path) -> None:
    assert cli("init").code == 0
    before = cli("keys", "public", "audit-signing").stdout
    (home / "tsuba.db").unlink()
    res = cli("init", "--force", "-f", "json")
    assert res.code == 0, res
    data = res.json()
    assert str(home / "keyring.json") in data["kept"]
    assert str(home / "tsuba.db") in data["created"]
    assert data["keys_created"] == []
    assert cli("keys", "public", "audit-signing").stdout == before
