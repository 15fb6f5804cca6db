"""Engines with durable settings: WAL and full sync on SQLite, pre-ping on PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tsuba.core.errors import StorageError


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy/our code issue BEGIN (IMMEDIATE where writes follow) explicitly.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
    finally:
        cur.close()


READ_ONLY = "tsuba_read_only"


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue instead of failing on a
    # read-to-write upgrade.  Readers that never write opt out (see ``reader``) so that WAL
    # lets them run beside a writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """The same engine for transactions that only read: on SQLite they take no write lock.

    A transaction begun through it must not write; SQLite would then fail it with "database
    is locked" under contention instead of queueing.
    """
    return engine.execution_options(**{READ_ONLY: True})


def open_engine(url: str, *, echo: bool = False) -> Engine:
    """Open an engine for ``url``; fails with a clear :class:`StorageError` if unusable."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            parent = Path(db).parent
            if not parent.is_dir():
                raise StorageError(f"database directory {parent} does not exist: run 'tsuba init'")
        # Opening a SQLite connection (with its PRAGMAs) costs about 1.6 ms, so pool them.
        # A forked child must not reuse its parent's connections: the pool is reset on fork.
        kwargs["pool_size"] = 8
        kwargs["max_overflow"] = 32
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        _reset_pool_on_fork(engine)
    else:
        kwargs["pool_pre_ping"] = True
        engine = create_engine(url, **kwargs)
    check_usable(engine)
    return engine


def _reset_pool_on_fork(engine: Engine) -> None:
    """After fork, drop inherited pooled connections without closing the parent's."""
    ref = weakref.ref(engine)

    def after_fork() -> None:
        eng = ref()
        if eng is not None:
            eng.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)


def check_usable(engine: Engine) -> None:
    """Open one connection and read the schema, turning corruption into a clear error."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            else:
                conn.execute(text("SELECT 1")).scalar()
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(
            f"database {engine.url.render_as_string(hide_password=True)} is not usable: "
            f"{_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def storage_error(exc: BaseException, what: str) -> StorageError:
    """A driver failure as one clear line naming the store (``what``) and the usual fix."""
    return StorageError(
        f"{what} is not usable: {_first_line(exc)} (check the database, then 'tsuba db upgrade')"
    )


def dialect_name(engine: Engine) -> str:
    return engine.dialect.name


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def connect(engine: Engine) -> Iterator[Connection]:
    """A transaction that commits on success and turns driver errors into StorageError."""
    try:
        with engine.begin() as conn:
            yield conn
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(f"storage error: {_first_line(exc)}") from exc
