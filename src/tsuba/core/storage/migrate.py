"""Schema migrations with Alembic, run from inside the package (no alembic.ini needed).

Each area owns a migration branch rooted at the base revision, so areas can add tables
independently; ``upgrade`` applies every head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from tsuba.core.errors import StorageError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, target: str = "heads") -> None:
    try:
        command.upgrade(alembic_config(engine), target)
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(f"migration failed: {str(exc.orig).splitlines()[0]}") from exc


def current_heads(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def expected_heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def require_current(engine: Engine) -> None:
    """Refuse to run against a schema older or newer than this code knows."""
    have, want = current_heads(engine), expected_heads()
    if have != want:
        raise StorageError(
            f"database schema is at {sorted(have) or 'nothing'}, this tsuba needs {sorted(want)}: "
            "run 'tsuba db upgrade'"
        )
