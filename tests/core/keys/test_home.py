"""The data directory: init, refusal to re-init, --force keeping keys, ensure_home checks."""

from __future__ import annotations

import base64
import os
import re
import stat
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tsuba.core.config import Settings, load_settings
from tsuba.core.errors import HomeError, KeyStoreError
from tsuba.core.home import check_home, default_config, ensure_home, init_home, require_home
from tsuba.core.keys import KeyKind, envelope, open_key_manager
from tsuba.core.storage import open_engine
from tsuba.core.storage.migrate import is_current


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in home.iterdir() if p.name in (
        "tsuba.toml", "master.key", "keyring.json")}


def test_init_creates_a_private_complete_home(home: Path) -> None:
    result = init_home(home)
    assert _mode(home) == 0o700
    for name in ("tsuba.toml", "master.key", "keyring.json", "tsuba.db"):
        assert _mode(home / name) == 0o600, name
        assert str(home / name) in result.created
    assert len(base64.b64decode((home / "master.key").read_text().strip())) == 32
    assert set(result.keys_created) == {"audit-signing", "data"}
    assert result.schema  # the revisions the database now records

    settings = load_settings(home)
    km = open_key_manager(settings)
    kinds = {k.name: k.kind for k in km.list_keys()}
    assert kinds == {"audit-signing": KeyKind.ED25519, "data": KeyKind.AES256_GCM}
    assert envelope.decrypt(km, envelope.encrypt(km, "data", b"x")) == b"x"
    engine = open_engine(settings.sqlalchemy_url)
    try:
        assert is_current(engine)
    finally:
        engine.dispose()
    assert check_home(settings) == []


def test_default_config_is_valid_and_all_defaults(home: Path) -> None:
    text = default_config()
    assert tomllib.loads(text) == {}  # all commented: defaults, exactly
    init_home(home)
    assert (home / "tsuba.toml").read_text() == text
    assert load_settings(home).redacted() == Settings(home=home).redacted()
    assert "master_key =" not in text and "TSUBA_KEYS__PKCS11_PIN" in text


def test_uncommenting_every_default_changes_nothing(home: Path) -> None:
    lines = default_config().splitlines()
    active = [line[2:] if line.startswith("# [") or (
        line.startswith("# ") and " = " in line and "(not set)" not in line) else line
        for line in lines]
    assert sum(1 for a, b in zip(lines, active, strict=True) if a != b) > 10
    home.mkdir()
    (home / "tsuba.toml").write_text("\n".join(active) + "\n")
    assert load_settings(home).redacted() == Settings(home=home).redacted()


def test_second_init_is_refused_and_changes_nothing(home: Path) -> None:
    init_home(home)
    before = _snapshot(home)
    with pytest.raises(HomeError) as exc:
        init_home(home)
    assert str(home) in str(exc.value) and "--force" in str(exc.value)
    assert _snapshot(home) == before


def test_force_keeps_keys_and_recreates_missing_pieces(home: Path) -> None:
    init_home(home)
    km = open_key_manager(load_settings(home))
    pem = km.public_key_pem("audit-signing")
    blob = envelope.encrypt(km, "data", b"kept")
    master = (home / "master.key").read_bytes()
    (home / "tsuba.db").unlink()
    (home / "tsuba.toml").unlink()

    result = init_home(home, force=True)
    assert str(home / "tsuba.db") in result.created and str(home / "tsuba.toml") in result.created
    assert str(home / "keyring.json") in result.kept and str(home / "master.key") in result.kept
    assert result.keys_created == ()
    assert (home / "master.key").read_bytes() == master
    km = open_key_manager(load_settings(home))
    assert km.public_key_pem("audit-signing") == pem
    assert envelope.decrypt(km, blob) == b"kept"


def test_force_with_keyring_but_no_master_key_refuses(home: Path) -> None:
    init_home(home)
    keyring = (home / "keyring.json").read_bytes()
    (home / "master.key").unlink()
    with pytest.raises(HomeError, match=r"master key file .* is missing"):
        init_home(home, force=True)
    assert not (home / "master.key").exists()
    assert (home / "keyring.json").read_bytes() == keyring


def test_force_adds_missing_required_key(home: Path) -> None:
    init_home(home)
    km = open_key_manager(load_settings(home))
    km.create("extra", KeyKind.HMAC_SHA256)
    (home / "keyring.json").unlink()
    result = init_home(home, force=True)
    assert str(home / "keyring.json") in result.created
    assert set(result.keys_created) == {"audit-signing", "data"}


def test_force_with_mismatched_master_key_fails_closed(home: Path) -> None:
    init_home(home)
    keyring = (home / "keyring.json").read_bytes()
    (home / "master.key").write_text(base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyStoreError, match="wrong master key"):
        init_home(home, force=True)
    assert (home / "keyring.json").read_bytes() == keyring


def test_init_with_master_key_from_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("TSUBA_MASTER_KEY", key)
    result = init_home(home)
    assert not (home / "master.key").exists()
    assert any("TSUBA_MASTER_KEY" in note for note in result.notes)
    assert open_key_manager(load_settings(home)).info("data").current_version == 1
    monkeypatch.setenv("TSUBA_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyStoreError, match="wrong master key"):
        open_key_manager(load_settings(home))


def test_init_with_passphrase(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSUBA_MASTER_PASSPHRASE", "a long passphrase")
    init_home(home)
    assert not (home / "master.key").exists()
    assert open_key_manager(load_settings(home)).info("audit-signing").kind is KeyKind.ED25519


def test_init_tightens_an_existing_open_directory(home: Path) -> None:
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    result = init_home(home)
    assert _mode(home) == 0o700
    assert any("0700" in note for note in result.notes)


def test_home_that_is_a_file(home: Path) -> None:
    home.write_text("not a directory")
    with pytest.raises(HomeError, match="is not a directory"):
        init_home(home)


def test_init_migrates_the_configured_database(
    home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    result = init_home(home)
    assert result.schema  # the revisions the database now records
    assert not (home / "tsuba.db").exists() or db_url.startswith("sqlite")
    engine = open_engine(db_url)
    try:
        assert is_current(engine)
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_require_home(home: Path) -> None:
    expected = f"no data directory at {home}: run 'tsuba init'"
    with pytest.raises(HomeError, match=re.escape(expected)):
        require_home(load_settings(home))
    with pytest.raises(HomeError, match="run 'tsuba init'"):
        open_key_manager(load_settings(home))


def test_ensure_home_initialises_then_validates(home: Path) -> None:
    first = ensure_home(load_settings(home))
    assert str(home / "keyring.json") in first.created
    second = ensure_home(load_settings(home))
    assert second.created == ()


def test_ensure_home_lists_what_is_missing_or_open(home: Path) -> None:
    init_home(home)
    (home / "keyring.json").unlink()
    (home / "tsuba.db").unlink()
    with pytest.raises(HomeError) as exc:
        ensure_home(load_settings(home))
    message = str(exc.value)
    assert f"missing {home / 'keyring.json'}" in message
    assert f"missing {home / 'tsuba.db'}" in message and "--force" in message
    init_home(home, force=True)
    (home / "master.key").chmod(0o640)
    with pytest.raises(HomeError, match=r"master\.key has mode 0640"):
        ensure_home(load_settings(home))


def test_ensure_home_requires_the_standard_keys(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                ) -> None:
    init_home(home)
    monkeypatch.setenv("TSUBA_AUDIT__SIGNING_KEY", "other-signer")
    with pytest.raises(HomeError, match="lacks the keys other-signer"):
        ensure_home(load_settings(home))
