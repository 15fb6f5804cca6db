"""Group commit: many callers' appends share one durable transaction.

A durable commit costs one fsync whatever it holds, so one writer thread takes everything
that queued up while the previous commit ran and commits it together.  Each caller blocks
on a lock of its own that the writer releases once the batch is durable (a bare lock is
the cheapest hand-off CPython has, which matters at tens of thousands of appends a
second); a failed batch fails every caller in it, and the next batch is tried afresh.

Callers released by one batch need a moment to queue again, so when fewer appends are
waiting than the last batch held, the writer waits up to a millisecond for the rest:
otherwise batches shrink and the writer spends its time on half-empty commits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from tsuba.core.errors import StorageError

T = TypeVar("T")

FILL_WAIT_SECONDS = 0.001


class _Slot(Generic[T]):
    __slots__ = ("data", "done", "error", "result")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[T]):
    def __init__(
        self,
        commit: Callable[[list[bytes]], Sequence[T]],
        *,
        batch_max: int = 4096,
        on_exit: Callable[[], None] | None = None,
        name: str = "tsuba-audit-writer",
    ) -> None:
        self._commit = commit
        self._on_exit = on_exit
        self._batch_max = batch_max
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Slot[T]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self._want = 1  # queue length at which a waiting writer is woken

    def submit(self, data: bytes) -> T:
        """Queue ``data`` and wait until the batch holding it is committed."""
        slot: _Slot[T] = _Slot(data)
        with self._cond:
            if self._closed:
                raise StorageError("audit log is closed: open it again to append")
            self._pending.append(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            if len(self._pending) >= self._want:
                self._cond.notify()
        slot.done.acquire()
        if slot.error is not None:
            raise slot.error
        return cast(T, slot.result)

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _loop(self) -> None:
        last = 1
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if len(self._pending) < last and not self._closed:
                    self._want = last
                    self._cond.wait(FILL_WAIT_SECONDS)
                    self._want = 1
                if not self._pending:
                    return
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
            last = len(batch)
            try:
                results = self._commit([slot.data for slot in batch])
                if len(results) != len(batch):
                    raise StorageError(f"commit returned {len(results)} results for {len(batch)}")
            except BaseException as exc:  # every waiter must hear about the failure
                for slot in batch:
                    slot.error = exc
                    slot.done.release()
                continue
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
                slot.done.release()
