from __future__ import annotations

from pathlib import Path

from tsuba import __version__


def test_version(cli) -> None:
    res = cli("--version")
    assert res.code == 0
    assert res.stdout.strip() == f"tsuba {__version__}"


def test_unknown_command_is_usage_error(cli) -> None:
    res = cli("no-such-command")
    assert res.code == 2
    assert "No such command" in res.stderr


def test_invalid_config_names_key_and_problem(cli, home: Path) -> None:
    home.mkdir()
    (home / "tsuba.toml").write_text("[server]\nport = 70000\n")
    res = cli("config", "show")
    assert res.code == 2
    assert res.stderr.count("\n") == 1
    assert "server.port" in res.stderr and "65535" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_config_key_is_named(cli, home: Path) -> None:
    home.mkdir()
    (home / "tsuba.toml").write_text("[audit]\nsigning_kee = 'x'\n")
    res = cli("config", "show")
    assert res.code == 2
    assert "unknown key 'audit.signing_kee'" in res.stderr


def test_config_show_hides_secrets(cli, home: Path, monkeypatch) -> None:
    home.mkdir()
    monkeypatch.setenv("TSUBA_DATABASE_URL", "postgresql://alice:hunter2@db.internal/tsuba")
    monkeypatch.setenv("TSUBA_MASTER_KEY", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==")
    res = cli("config", "show", "--format", "json")
    assert res.code == 0, res
    data = res.json()
    assert "hunter2" not in res.stdout and "c2VjcmV0" not in res.stdout
    assert data["database_url"] == "postgresql://alice:***@db.internal/tsuba"
    assert data["master_key"] == "**********"


def test_env_overrides_file(cli, home: Path, monkeypatch) -> None:
    home.mkdir()
    (home / "tsuba.toml").write_text("[server]\nport = 9000\n")
    assert cli("config", "show", "-f", "json").json()["server"]["port"] == 9000
    monkeypatch.setenv("TSUBA_SERVER__PORT", "9100")
    assert cli("config", "show", "-f", "json").json()["server"]["port"] == 9100


def test_debug_shows_traceback(cli, home: Path) -> None:
    home.mkdir()
    (home / "tsuba.toml").write_text("[server]\nport = 'x'\n")
    import pytest

    from tsuba.core.errors import ConfigError

    with pytest.raises(ConfigError):
        cli("--debug", "config", "show")
