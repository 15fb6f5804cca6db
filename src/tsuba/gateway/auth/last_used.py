"""``last_used_at`` kept roughly current without a write per request.

Each key is marked at most once per interval per process; a background thread writes the
marks in one transaction.  Writes never bump the revocation version (they would empty every
cache) and never run on the request path (on SQLite a write may wait for the write lock).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, or_, update
from sqlalchemy.exc import DBAPIError

from tsuba.core.identity.models import UTCDateTime
from tsuba.gateway.auth.tables import ApiKey

log = logging.getLogger(__name__)

_TOUCH = (
    update(ApiKey)
    .where(ApiKey.id == bindparam("key_id"))
    .where(
        or_(
            ApiKey.last_used_at.is_(None),
            ApiKey.last_used_at < bindparam("used_at", type_=UTCDateTime()),
        )
    )
    .values(last_used_at=bindparam("used_at", type_=UTCDateTime()))
)


class LastUsed:
    def __init__(self, engine: Engine, *, interval: float = 60.0, flush_every: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._flush_every = flush_every
        self._lock = threading.Lock()
        self._marked: dict[int, float] = {}
        self._pending: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def touch(self, key_id: int, now: float) -> None:
        """Note a use; cheap enough for every request (a dict read when not due)."""
        last = self._marked.get(key_id)
        if last is not None and now - last < self._interval:
            return
        with self._lock:
            self._marked[key_id] = now
            self._pending[key_id] = now
            if len(self._marked) > 100_000:
                self._marked.clear()
        self._ensure_thread()

    def flush(self) -> int:
        """Write every pending mark now; how many were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        params = [
            {"key_id": key_id, "used_at": datetime.fromtimestamp(at, UTC)}
            for key_id, at in pending.items()
        ]
        try:
            with self._engine.begin() as conn:
                conn.execute(_TOUCH, params)
        except DBAPIError as exc:  # a usage stamp is not worth failing a request over
            log.warning("could not record API key use: %s", exc.orig or exc)
            return 0
        return len(params)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=10)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread did not come along
                self._pid = os.getpid()
                self._thread = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="tsuba-apikey-last-used", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_every):
            self.flush()
