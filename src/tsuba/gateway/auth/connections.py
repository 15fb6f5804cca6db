"""A few read connections kept open between requests, safe across fork.

On SQLite every new connection costs PRAGMAs and a file open; keeping a handful open makes
the per-request version read one statement.  After a fork the parent's connections are
left alone (closing them would end the parent's sessions on a shared socket).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from tsuba.core.errors import StorageError
from tsuba.core.storage.engine import reader

T = TypeVar("T")


def _close_all(connections: list[Connection]) -> None:
    while connections:
        with contextlib.suppress(DBAPIError):
            connections.pop().close()


def storage_error(exc: BaseException) -> StorageError:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return StorageError(
        f"API key store is not usable: {first} (check the database, then 'tsuba db upgrade')"
    )


class ReadConnections:
    def __init__(self, engine: Engine, *, idle: int = 4) -> None:
        self._engine = engine
        self._idle_max = idle
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._inherited: list[Connection] = []
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _close_all, self._idle)

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` on a kept connection in a read transaction that is rolled back after."""
        conn = self._checkout()
        try:
            result = work(conn)
            conn.rollback()
        except DBAPIError as exc:
            conn.invalidate()
            conn.close()
            raise storage_error(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._checkin(conn)
        return result

    def close(self) -> None:
        self._finalizer()

    def _checkout(self) -> Connection:
        with self._lock:
            if self._pid != os.getpid():
                self._inherited.extend(self._idle)
                self._idle.clear()
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        try:
            conn = reader(self._engine).connect()
        except DBAPIError as exc:
            raise storage_error(exc) from exc
        if self._engine.dialect.name != "sqlite":
            # One statement per read, no BEGIN/ROLLBACK round trips.  Not on SQLite, whose
            # engine issues its own BEGIN that autocommit mode would leave open.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def _checkin(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < self._idle_max and self._finalizer.alive:
                self._idle.append(conn)
                return
        conn.close()
