"""Delivery through the Bus on SQLite and PostgreSQL: order, durability, filters, failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from bus_events import ev
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, update

from tsuba.core.bus import Bus, Delivery, OutboxRecord, SqlOutbox, decode, publish_in
from tsuba.core.bus.tables import STREAM, HeadRow, OutboxRow
from tsuba.core.errors import ConflictError, InputError, UsageError
from tsuba.core.events import SecurityEvent

MakeBus = Callable[..., Bus]


class Collector:
    """A handler that records what it was given, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)

    @property
    def positions(self) -> list[int]:
        with self.lock:
            return [d.position for d in self.deliveries]

    def attr(self, key: str) -> list[object]:
        with self.lock:
            return [d.event.attributes.get(key) for d in self.deliveries]


class Crash(BaseException):
    """Stands for SystemExit/KeyboardInterrupt: an abrupt stop, not a handler error."""


def test_every_subscriber_gets_every_event_in_position_order(make_bus: MakeBus) -> None:
    bus = make_bus(batch_size=7)
    first, second = Collector(), Collector()
    bus.subscribe("first", first)
    bus.subscribe("second", second)
    bus.start()
    per_thread = 30

    def publisher(tag: int) -> None:
        for i in range(per_thread):
            if i % 3 == 0:
                bus.publish_many([ev(i, t=tag), ev(i, t=tag, dup=True)])
            else:
                bus.publish(ev(i, t=tag))

    threads = [threading.Thread(target=publisher, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 4 * (per_thread + per_thread // 3)
    assert bus.drain(30)
    assert first.positions == list(range(1, total + 1))
    assert second.positions == first.positions
    for tag in range(4):
        mine = [d.event.attributes["i"] for d in first.deliveries if d.event.attributes["t"] == tag
                and "dup" not in d.event.attributes]
        assert mine == list(range(per_thread)), "each publisher's events keep their order"
    assert all(d.attempt == 1 for d in first.deliveries)
    assert bus.store.cursors() == {"first": total, "second": total}


def test_handler_gets_the_stored_bytes_and_an_equal_event(make_bus: MakeBus) -> None:
    bus = make_bus()
    got = Collector()
    bus.subscribe("s", got)
    bus.start()
    event = ev(7, severity="critical", correlation_id_hint="c")
    bus.publish(event)
    assert bus.drain(10)
    (delivery,) = got.deliveries
    assert delivery.event == event
    assert delivery.payload == event.canonical_bytes()


def test_subscriber_that_was_down_catches_up_in_order(make_bus: MakeBus) -> None:
    first = make_bus()
    first.subscribe("late", Collector())
    first.start()
    assert first.drain(10)
    assert first.stop() == []
    publisher = make_bus()
    publisher.publish_many([ev(i) for i in range(60)])
    for i in range(60, 100):
        publisher.publish(ev(i))
    got = Collector()
    again = make_bus(batch_size=16)
    assert again.subscribe("late", got) == 0
    again.start()
    assert again.drain(30)
    assert got.positions == list(range(1, 101))
    assert got.attr("i") == list(range(100))


def test_new_subscriber_starts_at_earliest_or_latest(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.publish_many([ev(i) for i in range(5)])
    old, new = Collector(), Collector()
    assert bus.subscribe("from-start", old) == 0
    assert bus.subscribe("from-now", new, start="latest") == 5
    bus.start()
    bus.publish(ev(5))
    assert bus.drain(10)
    assert old.positions == [1, 2, 3, 4, 5, 6]
    assert new.positions == [6]


def test_filters_by_class_and_severity_and_still_advance_the_cursor(make_bus: MakeBus) -> None:
    bus = make_bus(batch_size=3)
    auth, severe, both = Collector(), Collector(), Collector()
    bus.subscribe("auth", auth, classes=["authentication"])
    bus.subscribe("severe", severe, min_severity="high")
    bus.subscribe("both", both, classes={"authentication", "file_activity"}, min_severity=3)
    bus.start()
    shapes = [("authentication", "info"), ("api_activity", "critical"),
              ("authentication", "high"), ("file_activity", "medium"), ("api_activity", "low"),
              ("file_activity", "fatal"), ("api_activity", "info")]
    positions = bus.publish_many([ev(i, c, s) for i, (c, s) in enumerate(shapes)])
    assert bus.drain(10)
    assert auth.positions == [positions[0], positions[2]]
    assert severe.positions == [positions[1], positions[2], positions[5]]
    assert both.positions == [positions[2], positions[3], positions[5]]
    assert set(bus.store.cursors().values()) == {positions[-1]}


def test_failing_handler_is_retried_then_succeeds(make_bus: MakeBus) -> None:
    bus = make_bus(max_attempts=4)
    attempts: list[tuple[int, int]] = []

    def flaky(d: Delivery) -> None:
        attempts.append((d.position, d.attempt))
        if d.position == 2 and d.attempt < 3:
            raise ConnectionError("downstream unavailable")

    bus.subscribe("flaky", flaky)
    bus.start()
    bus.publish_many([ev(i) for i in range(3)])
    assert bus.drain(10)
    assert attempts == [(1, 1), (2, 1), (2, 2), (2, 3), (3, 1)]
    assert bus.store.dead_letters() == []
    assert bus.store.cursor("flaky") == 3


def test_handler_that_keeps_failing_goes_to_dead_letter_with_a_notice(make_bus: MakeBus) -> None:
    bus = make_bus(max_attempts=3)
    handled: list[int] = []

    def picky(d: Delivery) -> None:
        if d.event.attributes.get("poison"):
            raise ValueError("cannot parse the thing")
        handled.append(d.position)

    watch = Collector()
    bus.subscribe("picky", picky, classes=["api_activity"])
    bus.subscribe("watch", watch, classes=["detection_finding"])
    bus.start()
    bus.publish_many([ev(0), ev(1, poison=True), ev(2)])
    assert bus.drain(10)
    assert handled == [1, 3], "the subscriber moves on after the dead letter"
    (letter,) = bus.store.dead_letters("picky")
    assert letter.position == 2 and letter.attempts == 3
    assert letter.error == "ValueError: cannot parse the thing"
    assert SecurityEvent.from_json(letter.payload).attributes["poison"] is True
    (notice,) = [d.event for d in watch.deliveries]
    assert notice.attributes["bus_notice"] == "dead_letter"
    assert notice.attributes["subscriber"] == "picky"
    assert notice.attributes["position"] == 2
    assert notice.attributes["event_id"] == letter.event_id
    assert notice.severity.name == "HIGH" and notice.outcome.value == "failure"
    assert bus.store.cursor("picky") == bus.store.head()


def test_notice_about_a_notice_is_not_published_again(make_bus: MakeBus) -> None:
    bus = make_bus(max_attempts=1)

    def always_fails(_d: Delivery) -> None:
        raise RuntimeError("broken")

    bus.subscribe("broken", always_fails)
    bus.start()
    bus.publish(ev(1))
    assert bus.drain(10)
    assert bus.drain(1)
    assert [d.position for d in bus.store.dead_letters("broken")] == [1, 2]
    assert bus.store.head() == 2, "the failed notice was kept as a dead letter, no new notice"


def test_abrupt_stop_in_a_handler_does_not_acknowledge(make_bus: MakeBus) -> None:
    bus = make_bus(batch_size=4)

    def dies_on_six(d: Delivery) -> None:
        if d.position == 6:
            raise Crash

    bus.subscribe("fragile", dies_on_six)
    bus.start()
    bus.publish_many([ev(i) for i in range(10)])
    assert bus.drain(10) is False
    status = bus.status()["fragile"]
    assert status["alive"] is False and "Crash" in status["crashed"]
    assert bus.store.cursor("fragile") == 4, "the batch in hand (5..8) was not acknowledged"
    bus.stop()
    got = Collector()
    restarted = make_bus()
    restarted.subscribe("fragile", got)
    restarted.start()
    assert restarted.drain(10)
    assert got.positions == [5, 6, 7, 8, 9, 10]


def test_stop_finishes_the_current_batch(make_bus: MakeBus) -> None:
    bus = make_bus(batch_size=10)
    started = threading.Event()
    release = threading.Event()
    got: list[int] = []

    def slow(d: Delivery) -> None:
        started.set()
        release.wait(10)
        got.append(d.position)

    bus.subscribe("slow", slow)
    bus.publish_many([ev(i) for i in range(15)])
    bus.start()
    assert started.wait(10)
    stuck: list[str] = []
    stopper = threading.Thread(target=lambda: stuck.extend(bus.stop(timeout=10)))
    stopper.start()
    release.set()
    stopper.join(15)
    assert stuck == []
    assert got == list(range(1, 11))
    assert bus.store.cursor("slow") == 10


def test_hung_handler_does_not_block_other_subscribers(make_bus: MakeBus) -> None:
    bus = make_bus(stall_after=0.2)
    release = threading.Event()
    stuck_at: list[int] = []

    def hangs(d: Delivery) -> None:
        stuck_at.append(d.position)
        release.wait(30)

    others = Collector()
    bus.subscribe("hangs", hangs, classes=["api_activity"])
    bus.subscribe("others", others)
    bus.start()
    try:
        bus.publish_many([ev(i) for i in range(20)])
        stall = threading.Event()

        def saw_stall() -> bool:
            return any(d.event.attributes.get("bus_notice") == "stalled"
                       for d in list(others.deliveries))

        # "others" receives every event and, once the stall is noticed, the stall notice.
        for _ in range(300):
            if len(others.positions) >= 20 and saw_stall():
                stall.set()
                break
            release.wait(0.05)
        assert stall.is_set()
        assert others.positions[:20] == list(range(1, 21))
        notice = next(d.event for d in others.deliveries
                      if d.event.attributes.get("bus_notice") == "stalled")
        assert notice.attributes["subscriber"] == "hangs" and notice.attributes["position"] == 1
        assert bus.status()["hangs"]["busy_position"] == 1
        assert bus.store.cursor("hangs") == 0
        assert bus.drain(0.2) is False
    finally:
        release.set()
    assert bus.drain(10)
    assert bus.store.cursor("hangs") == bus.store.head()


def test_events_from_outside_the_bus_are_delivered_by_polling(
    make_bus: MakeBus, engine: Engine
) -> None:
    bus = make_bus(poll_interval=0.05)
    got = Collector()
    bus.subscribe("s", got)
    bus.start()
    with engine.begin() as conn:
        publish_in(conn, [ev(1), ev(2)])
    SqlOutbox(engine).append([ev(3)])
    assert bus.drain(10)
    assert got.positions == [1, 2, 3]
    with engine.begin() as conn:
        assert bus.publish_in(conn, ev(4)) == 4
    bus.notify()
    assert bus.drain(10)
    assert got.positions == [1, 2, 3, 4]


def test_handler_can_publish_what_it_derives(make_bus: MakeBus) -> None:
    bus = make_bus()
    alerts = Collector()

    def detector(d: Delivery) -> None:
        if d.event.outcome.value == "failure":
            bus.publish(SecurityEvent(event_class="detection_finding", severity="high",
                                      message="failed logon", correlation_id=d.event.id))

    bus.subscribe("detector", detector, classes=["authentication"])
    bus.subscribe("alerts", alerts, classes=["detection_finding"])
    bus.start()
    failed = SecurityEvent(event_class="authentication", outcome="failure")
    bus.publish_many([SecurityEvent(event_class="authentication", outcome="success"), failed])
    assert bus.drain(10)
    assert [d.event.correlation_id for d in alerts.deliveries] == [failed.id]


def _forge(engine: Engine, payload: bytes, **columns: object) -> int:
    """Write an outbox row the way a foreign or faulty writer might."""
    with engine.begin() as conn:
        position = conn.execute(
            update(HeadRow).where(HeadRow.name == STREAM)
            .values(position=HeadRow.position + 1).returning(HeadRow.position)
        ).scalar_one()
        conn.execute(insert(OutboxRow).values(
            position=position, event_id=columns.get("event_id", "forged"),
            event_class=columns.get("event_class", "api_activity"),
            severity=columns.get("severity", 1), event_time=datetime.now(UTC),
            published_at=datetime.now(UTC), payload=payload))
    return int(position)


def test_malformed_and_forged_rows_are_dead_lettered_not_delivered(
    make_bus: MakeBus, engine: Engine
) -> None:
    bus = make_bus(max_attempts=5)
    got = Collector()
    bus.subscribe("s", got, classes=["api_activity"])
    good = ev(1)
    tampered = ev(2)
    truncated = _forge(engine, good.canonical_bytes()[:-5], event_id=good.id)
    not_json = _forge(engine, b"\x00\xffnot json")
    relabelled = _forge(engine, tampered.canonical_bytes(), event_id=tampered.id,
                        severity=5)
    spaced = _forge(engine, good.canonical_bytes().replace(b",", b", "), event_id=good.id)
    ok = bus.publish(ev(3))
    bus.start()
    assert bus.drain(10)
    assert got.positions == [ok]
    letters = {d.position: d for d in bus.store.dead_letters("s")}
    assert set(letters) == {truncated, not_json, relabelled, spaced}
    assert all(d.attempts == 1 for d in letters.values()), "bad rows are not retried"
    assert "not valid JSON" in letters[not_json].error
    assert "disagree" in letters[relabelled].error
    assert "canonical" in letters[spaced].error


def _record(payload: bytes, event_id: str = "x", cls: str = "api_activity",
            severity: int = 1) -> OutboxRecord:
    now = datetime.now(UTC)
    return OutboxRecord(1, event_id, cls, severity, now, now, payload)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_refuses_arbitrary_bytes_with_an_input_error(payload: bytes) -> None:
    with pytest.raises(InputError):
        decode(_record(payload))


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=1, max_value=80), flip=st.integers(min_value=0, max_value=500))
def test_decode_refuses_truncated_or_altered_events(cut: int, flip: int) -> None:
    event = ev(1, note="x" * 20)
    raw = event.canonical_bytes()
    assert decode(_record(raw, event.id)) == event
    with pytest.raises(InputError):
        decode(_record(raw[:-cut], event.id))
    i = flip % len(raw)
    altered = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]
    try:
        back = decode(_record(altered, event.id))
    except InputError:
        return
    # A flip that still parses canonically changed the event itself, never silently.
    assert back != event


def test_bad_arguments_are_clear_errors(make_bus: MakeBus, engine: Engine) -> None:
    bus = make_bus()
    with pytest.raises(InputError, match="SecurityEvent"):
        bus.publish({"class": "api_activity"})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown event class 'nope'"):
        bus.subscribe("a", Collector(), classes=["nope"])
    with pytest.raises(InputError, match="at least one"):
        bus.subscribe("a", Collector(), classes=[])
    with pytest.raises(InputError, match="unknown severity"):
        bus.subscribe("a", Collector(), min_severity="loud")
    with pytest.raises(InputError, match="not callable"):
        bus.subscribe("a", "handler")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="subscriber name"):
        bus.subscribe("has space", Collector())
    bus.subscribe("a", Collector())
    with pytest.raises(ConflictError, match="already registered"):
        bus.subscribe("a", Collector())
    with pytest.raises(UsageError, match="start the bus"):
        bus.drain(1)
    bus.start()
    with pytest.raises(UsageError, match="started once"):
        bus.start()
    bus.stop()
    with pytest.raises(UsageError, match="stopped"):
        bus.subscribe("b", Collector())
    for kwargs in ({"batch_size": 0}, {"max_attempts": 0}, {"poll_interval": 0},
                   {"backoff_initial": 2, "backoff_max": 1}, {"stall_after": 0}):
        with pytest.raises(InputError):
            Bus(engine, **kwargs)


def test_unsubscribe_forget_releases_retention(make_bus: MakeBus) -> None:
    bus = make_bus()
    bus.subscribe("gone", Collector())
    bus.subscribe("here", Collector())
    bus.start()
    bus.publish_many([ev(i) for i in range(4)])
    assert bus.drain(10)
    assert bus.unsubscribe("gone", forget=True) is True
    assert set(bus.store.cursors()) == {"here"}
    assert bus.prune(10) == 4
