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


def _as_tuple(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def applied_revisions(engine: Engine) -> set[str]:
    """Every revision the database has, including those implied by its recorded heads.

    Alembic records only heads; a revision another one ``depends_on`` may vanish from the
    version table once the dependent one is applied, so walk down from each head.
    """
    script = ScriptDirectory.from_config(alembic_config())
    seen: set[str] = set()
    stack = list(current_heads(engine))
    while stack:
        rev_id = stack.pop()
        if rev_id in seen:
            continue
        seen.add(rev_id)
        if not _known(script, rev_id):
            continue
        rev = script.get_revision(rev_id)
        if rev is None:
            continue
        stack.extend(_as_tuple(rev.down_revision))
        stack.extend(_as_tuple(rev.dependencies))
    return seen


def is_current(engine: Engine) -> bool:
    return expected_heads() <= applied_revisions(engine)


def require_current(engine: Engine) -> None:
    """Refuse to run against a schema older or newer than this code knows."""
    have = current_heads(engine)
    want = expected_heads()
    script = ScriptDirectory.from_config(alembic_config())
    unknown = sorted(r for r in have if _known(script, r) is False)
    if unknown:
        raise StorageError(
            f"database schema has revisions {unknown} this tsuba does not know: "
            "it was migrated by a newer version"
        )
    if not want <= applied_revisions(engine):
        raise StorageError(
            f"database schema is at {sorted(have) or 'nothing'}, this tsuba needs {sorted(want)}: "
            "run 'tsuba db upgrade'"
        )


def _known(script: ScriptDirectory, rev_id: str) -> bool:
    try:
        return script.get_revision(rev_id) is not None
    except Exception:  # alembic raises ResolutionError/CommandError for unknown ids
        return False
