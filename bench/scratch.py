"""A throw-away PostgreSQL database for one benchmark run (shared by the bench scripts)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def scratch_postgres(admin_url: str | None = None) -> Iterator[str | None]:
    """URL of a fresh database next to ``admin_url`` (default TSUBA_TEST_DATABASE_URL), or None.

    CREATE/DROP DATABASE has no SQLAlchemy construct; the name is generated here.
    """
    base = admin_url or os.environ.get("TSUBA_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"tsuba_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
