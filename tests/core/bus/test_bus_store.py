"""The SQL outbox store on SQLite and PostgreSQL: positions, cursors, filters, retention."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from bus_events import ev
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select

from tsuba.core.bus import OutboxStore, SqlOutbox, publish_in
from tsuba.core.errors import InputError
from tsuba.core.events import EventClass, SecurityEvent, Severity
from tsuba.core.storage import Base

FUNC = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=25
)


def test_migration_matches_the_models(engine: Engine) -> None:
    def ours(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return str(table).startswith("bus_")

    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    assert {"bus_outbox", "bus_head", "bus_cursor", "bus_dead_letter"} <= set(
        Base.metadata.tables
    )


def test_sql_outbox_implements_the_store_protocol(engine: Engine) -> None:
    assert isinstance(SqlOutbox(engine), OutboxStore)


def test_positions_are_dense_and_payload_is_canonical(engine: Engine) -> None:
    store = SqlOutbox(engine)
    assert store.head() == 0
    events = [ev(i, severity="high") for i in range(5)]
    assert store.append(events[:2]) == [1, 2]
    assert store.append(events[2:]) == [3, 4, 5]
    assert store.append([]) == []
    assert store.head() == 5
    records = store.read(0, 5, limit=10)
    assert [r.position for r in records] == [1, 2, 3, 4, 5]
    for record, event in zip(records, events, strict=True):
        assert record.payload == event.canonical_bytes()
        assert record.event_id == event.id
        assert record.event_class == "api_activity"
        assert record.severity == int(Severity.HIGH)
        assert record.event_time == event.time
        assert record.published_at.tzinfo is not None
    assert [r.position for r in store.read(1, 4, limit=2)] == [2, 3]
    assert store.read(5, 5, limit=10) == []


def test_publish_in_commits_or_rolls_back_with_the_callers_state(engine: Engine) -> None:
    md = MetaData()
    state = Table("bus_test_state", md, Column("id", Integer, primary_key=True),
                  Column("v", String(20)))
    md.create_all(engine)
    store = SqlOutbox(engine)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(insert(state).values(id=1, v="lost"))
        assert publish_in(conn, ev(1)) == [1]
        raise RuntimeError("caller fails after publishing")
    assert store.head() == 0, "the rolled-back increment must not leave a gap"
    assert store.read(0, 10, limit=10) == []
    with engine.begin() as conn:
        conn.execute(insert(state).values(id=2, v="kept"))
        assert publish_in(conn, [ev(2), ev(3)]) == [1, 2]
    with engine.connect() as conn:
        assert conn.execute(select(state.c.v)).scalars().all() == ["kept"]
    assert [r.position for r in store.read(0, 10, limit=10)] == [1, 2]


@pytest.mark.postgres
def test_uncommitted_position_is_invisible_and_blocks_the_next_publisher(engine: Engine) -> None:
    """The PostgreSQL hazard a sequence would have: 2 commits and is read before 1 does."""
    if engine.dialect.name != "postgresql":
        pytest.skip("on SQLite a reader waits for the writer's lock, so nothing can be skipped")
    store = SqlOutbox(engine)
    second: list[int] = []
    with engine.begin() as conn:
        assert publish_in(conn, ev(1)) == [1]
        other = threading.Thread(target=lambda: second.extend(store.append([ev(2)])))
        other.start()
        other.join(0.5)
        assert other.is_alive(), "the second publisher must wait for the first to commit"
        assert store.head() == 0
        assert store.read(0, 10, limit=10) == []
    other.join(10)
    assert second == [2]
    assert [r.position for r in store.read(0, 10, limit=10)] == [1, 2]


_event_shape = st.tuples(st.sampled_from(list(EventClass)), st.sampled_from(list(Severity)))


@FUNC
@given(
    shapes=st.lists(_event_shape, min_size=0, max_size=30),
    wanted=st.none() | st.sets(st.sampled_from(list(EventClass)), min_size=1),
    floor=st.none() | st.sampled_from(list(Severity)),
    limit=st.integers(1, 7),
)
def test_filtered_reads_page_through_exactly_the_matching_events(
    engine: Engine, shapes, wanted, floor, limit
) -> None:
    store = SqlOutbox(engine)
    base = store.head()
    positions = store.append(
        [SecurityEvent(event_class=c, severity=s) for c, s in shapes]
    )
    expected = [
        p for p, (c, s) in zip(positions, shapes, strict=True)
        if (wanted is None or c in wanted) and (floor is None or s >= floor)
    ]
    classes = None if wanted is None else {c.value for c in wanted}
    seen: list[int] = []
    after, upto = base, store.head()
    while True:
        page = store.read(after, upto, limit=limit, classes=classes,
                          min_severity=None if floor is None else int(floor))
        assert len(page) <= limit
        seen += [r.position for r in page]
        if len(page) < limit:
            break
        after = page[-1].position
    assert seen == expected


def test_cursors_register_once_and_only_move_forward(engine: Engine) -> None:
    store = SqlOutbox(engine)
    store.append([ev(i) for i in range(3)])
    assert store.register("early") == 0
    assert store.register("late", start="latest") == 3
    assert store.register("late", start="earliest") == 3, "an existing cursor is kept"
    store.ack("early", 2)
    store.ack("early", 1)
    assert store.cursor("early") == 2
    assert store.cursors() == {"early": 2, "late": 3}
    assert store.cursor("nobody") is None
    assert store.remove("late") is True
    assert store.remove("late") is False
    assert store.cursors() == {"early": 2}


@pytest.mark.parametrize("name", ["", " x", "a b", "x" * 129, "-lead", "ä", "a/b", None, 5])
def test_bad_subscriber_names_are_refused(engine: Engine, name: object) -> None:
    with pytest.raises(InputError, match="subscriber name"):
        SqlOutbox(engine).register(name)  # type: ignore[arg-type]


def test_bad_start_is_refused(engine: Engine) -> None:
    with pytest.raises(InputError, match="earliest"):
        SqlOutbox(engine).register("x", start="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [b"raw bytes", "text", {"class": "api_activity"}, [object()], 42, [ev(1), "x"]]
)
def test_only_security_events_can_be_published(engine: Engine, bad: object) -> None:
    store = SqlOutbox(engine)
    with pytest.raises(InputError, match="SecurityEvent"):
        store.append(bad)  # type: ignore[arg-type]
    assert store.head() == 0, "a refused batch must not publish any part of it"


def test_overlong_event_id_is_refused_before_storage(engine: Engine) -> None:
    with pytest.raises(InputError, match="event id"):
        SqlOutbox(engine).append([SecurityEvent(id="x" * 129, event_class="api_activity")])


def test_prune_only_deletes_what_every_subscriber_acknowledged(engine: Engine) -> None:
    store = SqlOutbox(engine)
    store.append([ev(i) for i in range(10)])
    assert store.prune(100) == 0, "with no durable subscriber nothing has been read: keep all"
    store.register("fast")
    store.register("slow")
    store.ack("fast", 10)
    store.ack("slow", 5)
    assert store.prune(3) == 2  # below position 3 only
    assert [r.position for r in store.read(0, 10, limit=20)] == list(range(3, 11))
    assert store.prune(100) == 3  # up to slow's cursor, 5
    assert [r.position for r in store.read(0, 10, limit=20)] == [6, 7, 8, 9, 10]
    assert store.prune(100) == 0
    store.remove("slow")
    assert store.prune(100) == 5
    assert store.read(0, 10, limit=20) == []
    assert store.append([ev(11)]) == [11], "positions continue after a full prune"


@pytest.mark.parametrize("bad", [-1, "5", 1.5, None])
def test_prune_refuses_bad_positions(engine: Engine, bad: object) -> None:
    with pytest.raises(InputError, match="prune position"):
        SqlOutbox(engine).prune(bad)  # type: ignore[arg-type]


def test_dead_letter_is_recorded_once_and_moves_the_cursor(engine: Engine) -> None:
    store = SqlOutbox(engine)
    store.append([ev(1), ev(2)])
    store.register("s")
    record = store.read(0, 2, limit=1)[0]
    notice = SecurityEvent(event_class="detection_finding", message="gave up")
    assert store.dead_letter("s", record, error="boom", attempts=3, notice=notice) == 3
    assert store.dead_letter("s", record, error="again", attempts=1, notice=notice) is None
    assert store.cursor("s") == 1
    (letter,) = store.dead_letters("s")
    assert (letter.position, letter.error, letter.attempts) == (1, "boom", 3)
    assert letter.payload == record.payload and letter.event_id == record.event_id
    assert store.dead_letters("other") == []
    assert store.head() == 3
