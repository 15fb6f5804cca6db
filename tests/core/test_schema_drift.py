"""Every table the code declares is exactly what the migrations build, on both databases."""

from __future__ import annotations

import importlib
import pkgutil

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

import tsuba
from tsuba.core.storage import Base


def _import_everything() -> None:
    for mod in pkgutil.walk_packages(tsuba.__path__, prefix="tsuba."):
        if ".migrations" in mod.name:
            continue
        importlib.import_module(mod.name)


def test_models_and_migrations_agree(engine: Engine) -> None:
    _import_everything()
    assert Base.metadata.tables, "no tables declared"
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []
