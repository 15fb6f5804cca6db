"""In-process delivery from an outbox store to named, durable subscribers.

Threads: one dispatcher thread per bus learns the newest committed position (at once from
local publishes, and by polling the store for events other processes published) and hands
it to one worker thread per subscriber.  Each worker reads from its own persisted cursor,
calls its handler in position order and acknowledges after the handler returns, so a
crash redelivers rather than loses (at-least-once).  A worker per subscriber is the answer
to a handler that hangs: Python cannot interrupt a thread, but a hung handler then only
holds up its own subscriber, and the dispatcher publishes a stall notice about it.

Run one active consumer per subscriber name per database: two would both deliver (still
at-least-once, never a loss), and the cursor only ever moves forward.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from tsuba.core.bus.notices import dead_letter_notice, is_notice, stall_notice
from tsuba.core.bus.sql_store import SqlOutbox, publish_in
from tsuba.core.bus.store import (
    OutboxRecord,
    OutboxStore,
    Start,
    check_events,
    check_subscriber_name,
)
from tsuba.core.errors import ConflictError, InputError, TsubaError, UsageError
from tsuba.core.events import EventClass, SecurityEvent, Severity

log = logging.getLogger("tsuba.bus")

_MAX_ERROR = 2000


@dataclass(frozen=True)
class Delivery:
    """What a handler receives; ``position`` is stable, so handlers can de-duplicate."""

    position: int
    event: SecurityEvent
    payload: bytes
    attempt: int


Handler = Callable[[Delivery], object]


def decode(record: OutboxRecord) -> SecurityEvent:
    """Parse a stored event, refusing rows the bus did not write faithfully."""
    event = SecurityEvent.from_json(record.payload)
    if event.canonical_bytes() != record.payload:
        raise InputError("stored payload is not the canonical form of a SecurityEvent")
    if (
        event.id != record.event_id
        or event.event_class.value != record.event_class
        or int(event.severity) != record.severity
    ):
        raise InputError("stored id/class/severity columns disagree with the payload")
    return event


@dataclass
class _Subscriber:
    name: str
    handler: Handler
    classes: frozenset[str] | None
    min_severity: int | None
    acked: int
    target: int = 0
    delivered: int = 0
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    busy_since: float | None = None
    busy_position: int = 0
    stall_reported: int = 0
    crashed: BaseException | None = None


class Bus:
    """Publish/subscribe for SecurityEvents over a durable outbox.

    ``store`` is an :class:`OutboxStore`, or an Engine for the SQL outbox.  Handlers that
    raise are retried with exponential backoff (``backoff_initial`` doubling up to
    ``backoff_max``); after ``max_attempts`` the event goes to the dead-letter table, a
    notice event is published, and the subscriber moves on.
    """

    def __init__(
        self,
        store: OutboxStore | Engine,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        max_attempts: int = 5,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        stall_after: float = 30.0,
    ) -> None:
        if poll_interval <= 0 or backoff_initial < 0 or backoff_max < backoff_initial:
            raise InputError("bus timings must be positive, with backoff_max >= backoff_initial")
        if batch_size < 1 or max_attempts < 1:
            raise InputError("batch_size and max_attempts must be at least 1")
        if stall_after <= 0:
            raise InputError("stall_after must be positive")
        self.store: OutboxStore = SqlOutbox(store) if isinstance(store, Engine) else store
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stall_after = stall_after
        self._subs: dict[str, _Subscriber] = {}
        self._lock = threading.Lock()  # guards _subs and the lifecycle flags
        self._wake = threading.Condition()  # dispatcher sleeps here
        self._known_head = 0
        self._dirty = False  # a local publish moved _known_head since the last hand-out
        self._poll_now = True
        self._progress = threading.Condition()  # drain() sleeps here
        self._stopping = threading.Event()
        self._started = False
        self._dispatcher: threading.Thread | None = None

    # -- publishing ------------------------------------------------------------------------
    def publish(self, event: SecurityEvent) -> int:
        """Store ``event`` durably and return its position once committed."""
        return self.publish_many([event])[0]

    def publish_many(self, events: Iterable[SecurityEvent]) -> list[int]:
        """Store ``events`` in one transaction; positions are consecutive."""
        checked = check_events(events)
        if not checked:
            return []
        positions = self.store.append(checked)
        self._advance(positions[-1])
        return positions

    def publish_in(self, conn: Connection, event: SecurityEvent) -> int:
        """Append within the caller's transaction; call :meth:`notify` after it commits."""
        if not isinstance(self.store, SqlOutbox):
            raise UsageError("publish_in needs the SQL outbox store")
        return publish_in(conn, event)[0]

    def prune(self, before_position: int) -> int:
        """Delete events below ``before_position`` that every durable subscriber acked."""
        return self.store.prune(before_position)

    def notify(self) -> None:
        """Make the dispatcher look for new events now instead of at its next poll."""
        with self._wake:
            self._poll_now = True
            self._wake.notify()

    def _advance(self, position: int) -> None:
        with self._wake:
            self._known_head = max(self._known_head, position)
            self._dirty = True
            self._wake.notify()

    # -- subscribing -----------------------------------------------------------------------
    def subscribe(
        self,
        name: str,
        handler: Handler,
        *,
        classes: Iterable[EventClass | str] | None = None,
        min_severity: Severity | str | int | None = None,
        start: Start = "earliest",
    ) -> int:
        """Register a durable subscriber and return the position it resumes after.

        A name seen before resumes from its stored cursor; a new one starts at the oldest
        retained event (``start="earliest"``) or after the newest (``"latest"``).
        """
        check_subscriber_name(name)
        if not callable(handler):
            raise InputError(f"handler for subscriber {name!r} is not callable")
        class_set = _parse_classes(classes)
        severity = _parse_severity(min_severity)
        with self._lock:
            if name in self._subs:
                raise ConflictError(f"subscriber {name!r} is already registered on this bus")
            if self._stopping.is_set():
                raise UsageError("the bus is stopped: create a new Bus to subscribe")
            cursor = self.store.register(name, start)
            sub = _Subscriber(name, handler, class_set, severity, acked=cursor, delivered=cursor)
            self._subs[name] = sub
            if self._started:
                self._start_worker(sub)
        self.notify()
        return cursor

    def unsubscribe(self, name: str, *, forget: bool = False, timeout: float = 5.0) -> bool:
        """Stop delivering to ``name``; ``forget`` also deletes its cursor (unblocks prune)."""
        with self._lock:
            sub = self._subs.pop(name, None)
        stopped = True
        if sub is not None:
            sub.stop.set()
            sub.wake.set()
            if sub.thread is not None:
                sub.thread.join(timeout)
                stopped = not sub.thread.is_alive()
        if forget:
            self.store.remove(name)
        return stopped

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Bus:
        with self._lock:
            if self._started or self._stopping.is_set():
                raise UsageError("a Bus can be started once: create a new one to restart")
            self._started = True
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="tsuba-bus-dispatcher", daemon=True
            )
            self._dispatcher.start()
            for sub in self._subs.values():
                self._start_worker(sub)
        return self

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop gracefully: each worker finishes its current batch (retries are abandoned,
        unacknowledged events stay for the next run).  Returns the subscribers whose
        handler did not return within ``timeout`` (their threads are daemons)."""
        self._stopping.set()
        with self._lock:
            subs = list(self._subs.values())
        for sub in subs:
            sub.stop.set()
            sub.wake.set()
        with self._wake:
            self._wake.notify()
        deadline = time.monotonic() + timeout
        if self._dispatcher is not None:
            self._dispatcher.join(max(0.0, deadline - time.monotonic()))
        stuck = []
        for sub in subs:
            if sub.thread is not None:
                sub.thread.join(max(0.0, deadline - time.monotonic()))
                if sub.thread.is_alive():
                    stuck.append(sub.name)
        return stuck

    def __enter__(self) -> Bus:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every subscriber has acknowledged the head and the head stays put.

        Events published while draining (the bus's own notices included) are waited for
        too.  Returns False on timeout, or at once if a subscriber's worker has died.
        """
        if not self._started:
            raise UsageError("start the bus before draining it")
        deadline = time.monotonic() + timeout
        target = self.store.head()
        while True:
            self._advance(target)
            if not self._wait_acked(target, deadline):
                return False
            head = self.store.head()
            if head == target:
                return True
            target = head

    def _wait_acked(self, target: int, deadline: float) -> bool:
        with self._progress:
            while True:
                with self._lock:
                    subs = list(self._subs.values())
                if any(s.crashed is not None for s in subs):
                    return False
                if all(s.acked >= target for s in subs):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, self.poll_interval))

    def status(self) -> dict[str, dict[str, Any]]:
        """Per subscriber: acknowledged position, whether alive, what it is stuck on."""
        with self._lock:
            subs = list(self._subs.values())
        now = time.monotonic()
        return {
            s.name: {
                "acked": s.acked,
                # A crashed worker counts as dead at once, while its thread still unwinds.
                "alive": s.crashed is None and s.thread is not None and s.thread.is_alive(),
                "crashed": repr(s.crashed) if s.crashed is not None else None,
                "busy_position": s.busy_position if s.busy_since is not None else None,
                "busy_seconds": (now - s.busy_since) if s.busy_since is not None else None,
            }
            for s in subs
        }

    # -- dispatcher thread -----------------------------------------------------------------
    def _dispatch(self) -> None:
        next_poll = 0.0
        while not self._stopping.is_set():
            with self._wake:
                wait = next_poll - time.monotonic()
                if not (self._poll_now or self._dirty) and wait > 0:
                    self._wake.wait(wait)
                poll = self._poll_now or time.monotonic() >= next_poll
                self._poll_now = self._dirty = False
            if self._stopping.is_set():
                break
            if poll:
                next_poll = time.monotonic() + self.poll_interval
                try:
                    self._advance_quietly(self.store.head())
                except TsubaError as exc:
                    log.warning("event bus: cannot read the outbox head: %s", exc)
            with self._wake:
                head = self._known_head
            with self._lock:
                subs = list(self._subs.values())
            for sub in subs:
                if sub.target < head:
                    sub.target = head
                    sub.wake.set()
                self._check_stall(sub)

    def _advance_quietly(self, position: int) -> None:
        with self._wake:
            self._known_head = max(self._known_head, position)

    def _check_stall(self, sub: _Subscriber) -> None:
        since, position = sub.busy_since, sub.busy_position
        if since is None or sub.stall_reported == position:
            return
        seconds = time.monotonic() - since
        if seconds < self.stall_after:
            return
        sub.stall_reported = position
        log.error("event bus: subscriber %r stuck at position %d for %.0fs", sub.name,
                  position, seconds)
        try:
            self.publish(stall_notice(sub.name, position, seconds))
        except TsubaError as exc:
            log.error("event bus: cannot publish the stall notice: %s", exc)

    # -- worker threads --------------------------------------------------------------------
    def _start_worker(self, sub: _Subscriber) -> None:
        sub.thread = threading.Thread(
            target=self._work, args=(sub,), name=f"tsuba-bus-{sub.name}", daemon=True
        )
        sub.thread.start()

    def _work(self, sub: _Subscriber) -> None:
        try:
            while not sub.stop.is_set():
                if sub.acked >= sub.target:
                    sub.wake.wait(self.poll_interval)
                    sub.wake.clear()
                    continue
                try:
                    self._batch(sub)
                except TsubaError as exc:
                    # Storage trouble: nothing was acknowledged past what was handled, so
                    # retrying the batch later redelivers instead of losing.
                    log.warning("event bus: subscriber %r paused: %s", sub.name, exc)
                    sub.stop.wait(self.backoff_max)
        except BaseException as exc:
            # SystemExit, KeyboardInterrupt and the like end this subscriber without
            # acknowledging the event in hand; a new Bus redelivers it.
            sub.crashed = exc
            log.error("event bus: subscriber %r stopped abruptly: %r", sub.name, exc)
        finally:
            with self._progress:
                self._progress.notify_all()

    def _batch(self, sub: _Subscriber) -> None:
        upto = sub.target
        records = self.store.read(
            sub.acked,
            upto,
            limit=self.batch_size,
            classes=sub.classes,
            min_severity=sub.min_severity,
        )
        sub.delivered = sub.acked
        for record in records:
            if not self._deliver(sub, record):
                self._ack(sub, sub.delivered)
                return
            sub.delivered = max(sub.delivered, record.position)
        end = records[-1].position if len(records) == self.batch_size else upto
        self._ack(sub, end)

    def _deliver(self, sub: _Subscriber, record: OutboxRecord) -> bool:
        """Deliver one record with retries; False when stopped before it was handled."""
        try:
            event = decode(record)
        except TsubaError as exc:
            self._dead_letter(sub, record, None, f"{type(exc).__name__}: {exc}", 1)
            return True
        attempt = 0
        while True:
            attempt += 1
            sub.busy_position, sub.busy_since = record.position, time.monotonic()
            try:
                sub.handler(Delivery(record.position, event, record.payload, attempt))
                return True
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
                if attempt >= self.max_attempts:
                    self._dead_letter(sub, record, event, error, attempt)
                    return True
                log.info("event bus: subscriber %r failed at %d (attempt %d): %s",
                         sub.name, record.position, attempt, error)
            finally:
                sub.busy_since = None
            # Acknowledge what was handled before waiting, so a crash now redelivers less.
            self._ack(sub, sub.delivered)
            delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
            if sub.stop.wait(delay):
                return False

    def _dead_letter(
        self,
        sub: _Subscriber,
        record: OutboxRecord,
        event: SecurityEvent | None,
        error: str,
        attempts: int,
    ) -> None:
        log.error("event bus: subscriber %r dead-lettered position %d after %d attempt(s): %s",
                  sub.name, record.position, attempts, error)
        # A failed notice about a failed notice gets no notice of its own: no feedback loop.
        notice = None if is_notice(event) else dead_letter_notice(
            sub.name, record.position, event, error, attempts
        )
        position = self.store.dead_letter(
            sub.name, record, error=error, attempts=attempts, notice=notice
        )
        self._set_acked(sub, record.position)
        sub.delivered = max(sub.delivered, record.position)
        if position is not None:
            self._advance(position)

    def _ack(self, sub: _Subscriber, position: int) -> None:
        if position > sub.acked:
            self.store.ack(sub.name, position)
            self._set_acked(sub, position)

    def _set_acked(self, sub: _Subscriber, position: int) -> None:
        with self._progress:
            sub.acked = max(sub.acked, position)
            self._progress.notify_all()


def _parse_classes(classes: Iterable[EventClass | str] | None) -> frozenset[str] | None:
    if classes is None:
        return None
    if isinstance(classes, str | EventClass):
        classes = [classes]
    out = set()
    for value in classes:
        try:
            out.add(EventClass(value).value)
        except ValueError:
            names = ", ".join(c.value for c in EventClass)
            raise InputError(f"unknown event class {value!r} (one of {names})") from None
    if not out:
        raise InputError("classes must name at least one event class (or be None for all)")
    return frozenset(out)


def _parse_severity(value: Severity | str | int | None) -> int | None:
    if value is None:
        return None
    try:
        return int(Severity.parse(value))
    except ValueError as exc:
        raise InputError(str(exc)) from None



