"""ORM transactions with the two habits every store here shares.

Reads go through ``reader`` (no write lock on SQLite).  Writes to a store whose readers cache
what they read bump that store's version row in the same transaction, so every process sees
its cache go stale on its next version read; driver errors become one clear StorageError and
a unique-constraint race a ConflictError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.errors import ConflictError, StorageError
from tsuba.core.storage.engine import reader, storage_error


@contextmanager
def read_session(engine: Engine, what: str) -> Iterator[Session]:
    """A read-only ORM transaction on the store named ``what`` (for error messages)."""
    try:
        with Session(reader(engine), expire_on_commit=False) as s, s.begin():
            yield s
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, what) from exc


@contextmanager
def versioned_write(
    engine: Engine, what: str, version_model: Any, version_row: int
) -> Iterator[Session]:
    """A write transaction that also increments ``version_model``'s row ``version_row``.

    ``version_model`` is a mapped class with ``id`` and ``version`` columns.
    """
    try:
        with Session(engine, expire_on_commit=False) as s, s.begin():
            yield s
            result = cast(
                CursorResult[Any],
                s.execute(
                    update(version_model)
                    .where(version_model.id == version_row)
                    .values(version=version_model.version + 1)
                    .execution_options(synchronize_session=False)
                ),
            )
            if result.rowcount != 1:
                raise StorageError(f"the {what} version row is missing: run 'tsuba db upgrade'")
    except sa_exc.IntegrityError as exc:
        raise ConflictError(
            "the change conflicts with one made at the same time: look again and retry"
        ) from exc
    except sa_exc.DBAPIError as exc:
        raise storage_error(exc, what) from exc
