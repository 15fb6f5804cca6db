from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tsuba.core.errors import StorageError
from tsuba.core.storage import open_engine, upgrade
from tsuba.core.storage.migrate import is_current, require_current


def test_upgrade_reaches_every_head_and_is_idempotent(db_url: str) -> None:
    eng = open_engine(db_url)
    with pytest.raises(StorageError, match="tsuba db upgrade"):
        require_current(eng)
    upgrade(eng)
    assert is_current(eng)
    upgrade(eng)  # second run changes nothing and does not fail
    require_current(eng)


def test_sqlite_runs_in_wal_with_full_sync(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_corrupt_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StorageError, match="not usable: file is not a database"):
        open_engine(f"sqlite:///{bad}")


def test_truncated_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    eng = open_engine(f"sqlite:///{good}")
    upgrade(eng)
    eng.dispose()
    data = good.read_bytes()
    for suffix in ("-wal", "-shm"):
        Path(str(good) + suffix).unlink(missing_ok=True)
    good.write_bytes(data[:100])
    with pytest.raises(StorageError):
        eng2 = open_engine(f"sqlite:///{good}")
        upgrade(eng2)


def test_missing_directory_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="tsuba init"):
        open_engine(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="not usable"):
        open_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
