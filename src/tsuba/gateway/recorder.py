"""Request events to the audit log and the bus, group-committed across concurrent requests.

``Platform.record`` appends one event and publishes it, each a durable transaction of its
own.  At thousands of requests a second that is two fsyncs per request, so the gateway
records the same way in batches: one writer thread takes every event queued while its
previous commit ran, appends them to the audit log in one transaction, then publishes them
to the bus in one more: audit first, then bus, as ``Platform.record`` does.  Requests wait
for the audit commit only: the audit log is the durable record, and the bus (which feeds
detections) follows in batches, ``BUS_DELAY_SECONDS`` after the first event waiting for it
when no audit commit is waiting, and within ``BUS_MAX_LAG_SECONDS`` in any case.
Both writes stay on one thread: on SQLite a second writer thread would meet the database
lock and sleep in SQLite's busy handler (milliseconds) instead of simply queueing.

With ``audit.durability = "durable"`` a request waits for its batch before its response
completes; with ``"async"`` it does not (its record lands a moment later, and is lost if
the process dies in that moment).  A failed batch fails every durable request in it, which
then answers 503: the gateway fails closed when it cannot record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tsuba.core.errors import StorageError, TsubaError
from tsuba.core.events import SecurityEvent
from tsuba.core.platform import Platform
from tsuba.gateway import inference_metrics as m

log = logging.getLogger("tsuba.gateway")

FILL_WAIT_SECONDS = 0.0005
MAX_QUEUE = 100_000
BUS_BATCH_MAX = 4096
BUS_DELAY_SECONDS = 0.02  # the bus is fed in batches: one commit for many requests
BUS_MAX_LAG_SECONDS = 0.2  # under constant load the bus still gets its turn


@dataclass(slots=True)
class _Item:
    events: Sequence[SecurityEvent]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[None] | None


def _resolve(items: list[_Item], error: BaseException | None) -> None:
    for item in items:
        fut = item.future
        if fut is None or fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class EventRecorder:
    def __init__(self, platform: Platform, *, durable: bool = True, batch_max: int = 4096) -> None:
        self.platform = platform
        self.durable = durable
        self._batch_max = batch_max
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Item] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._last = 1
        self._backlog: list[SecurityEvent] = []  # audited, not yet on the bus
        self._backlog_since = 0.0

    async def record(self, events: Sequence[SecurityEvent]) -> None:
        """Queue ``events`` (one request's); in durable mode return once they are committed."""
        if not events:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] | None = loop.create_future() if self.durable else None
        with self._cond:
            if self._closed:
                raise StorageError("the audit recorder is closed")
            if not self.durable and len(self._pending) >= MAX_QUEUE:
                # Bounded even when nobody waits: past this, requests wait like durable ones.
                fut = loop.create_future()
            self._pending.append(_Item(events, loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tsuba-gateway-recorder", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        if fut is not None:
            await fut

    def close(self) -> None:
        """Commit what is queued, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    age = time.monotonic() - self._backlog_since
                    overdue = bool(self._backlog) and (
                        age >= BUS_MAX_LAG_SECONDS or len(self._backlog) >= BUS_BATCH_MAX
                    )
                    if self._pending and not overdue:
                        audit = True
                        break
                    if self._backlog and (overdue or self._closed or age >= BUS_DELAY_SECONDS):
                        audit = False
                        break
                    if self._closed and not self._pending:
                        return
                    self._cond.wait(max(0.0, BUS_DELAY_SECONDS - age) if self._backlog else None)
                if audit:
                    if len(self._pending) < self._last and not self._closed:
                        self._cond.wait(FILL_WAIT_SECONDS)  # let the last batch's callers rejoin
                    batch = self._pending[: self._batch_max]
                    del self._pending[: self._batch_max]
                else:
                    events = self._backlog[:BUS_BATCH_MAX]
                    del self._backlog[:BUS_BATCH_MAX]
                    self._backlog_since = time.monotonic()
            if audit:
                self._audit(batch)
            else:
                self._publish(events)

    def _audit(self, batch: list[_Item]) -> None:
        self._last = len(batch)
        events = [e for item in batch for e in item.events]
        error: BaseException | None = None
        try:
            self.platform.audit.append_many(events)
            m.AUDIT_BATCH.observe(len(events))
        except BaseException as exc:
            error = exc if isinstance(exc, TsubaError) else StorageError(
                f"audit log append failed: {type(exc).__name__}: {exc}"
            )
            m.AUDIT_FAILURES.inc(len(events))
            log.error("audit append of %d events failed: %s", len(events), error)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in batch:
            if item.future is not None and item.loop is not None:
                by_loop.setdefault(item.loop, []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, items, error)
        if error is None:
            with self._cond:
                if not self._backlog:
                    self._backlog_since = time.monotonic()
                self._backlog.extend(events)

    def _publish(self, events: list[SecurityEvent]) -> None:
        try:
            self.platform.bus.publish_many(events)
        except Exception as exc:  # in the audit log already; the bus may lag
            m.BUS_FAILURES.inc(len(events))
            log.error("bus publish of %d events failed: %s", len(events), exc)
