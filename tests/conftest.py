"""Shared fixtures: a fresh data directory, and databases on SQLite and real PostgreSQL.

PostgreSQL tests run when TSUBA_TEST_DATABASE_URL points at a server (``.ci/services.sh``
starts one); under CI a missing server is an error, not a skip, so nothing passes unseen.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tsuba.core.storage import open_engine, upgrade

PG_URL = os.environ.get("TSUBA_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_CI:
        missing = [k for k in ("TSUBA_TEST_DATABASE_URL", "TSUBA_TEST_REDIS_URL",
                               "TSUBA_TEST_PKCS11_MODULE") if not os.environ.get(k)]
        if missing:
            raise pytest.UsageError(f"CI needs the test services: {', '.join(missing)} unset")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory path (not yet initialised), exported as TSUBA_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("TSUBA_HOME", str(path))
    for var in list(os.environ):
        if var.startswith("TSUBA_") and var not in ("TSUBA_HOME",) and not var.startswith(
            "TSUBA_TEST_"
        ):
            monkeypatch.delenv(var)
    return path


def _fresh_pg_database() -> Iterator[str]:
    assert PG_URL is not None
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"tsuba_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured (set TSUBA_TEST_DATABASE_URL)")
    yield from _fresh_pg_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    eng = open_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self) -> object:
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``tsuba ARGS...`` in-process through the real entry point (exit codes included).

    ``cli("audit", "append", stdin="...")`` returns a CliResult with code, stdout, stderr.
    """
    import io
    import sys

    from tsuba.cli.main import run

    def invoke(*args: str, stdin: str | None = None) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["tsuba", *args])
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        code = 0
        try:
            run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
