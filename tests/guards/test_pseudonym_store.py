"""The shared pseudonym stores (SQLite, PostgreSQL, real Redis) with real envelope
encryption, and the stream restorer over arbitrary chunkings."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from processes import free_port
from tsuba.core.errors import DecryptionError, InputError, StorageError
from tsuba.guards.anonymize import StreamRestorer, anonymize, deanonymize, restore
from tsuba.guards.anonymize.redis_store import RedisMappingStore
from tsuba.guards.anonymize.store import PseudonymRow, SqlMappingStore
from tsuba.guards.pii import analyze

T = PseudonymRow.__table__


def test_placeholders_are_shared_between_store_instances(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    worker_a = SqlMappingStore(engine, keys)
    worker_b = SqlMappingStore(engine, keys)  # another gateway worker, same database
    text = "Olga Brandt wrote from olga@example.net"
    out = anonymize(text, analyze(text), session="sess-1", store=worker_a)
    assert out.text == "<PERSON_1> wrote from <EMAIL_ADDRESS_1>"
    assert worker_b.placeholder_for("sess-1", "PERSON", "Olga Brandt") == "<PERSON_1>"
    assert worker_b.placeholder_for("sess-1", "PERSON", "Ivo Kral") == "<PERSON_2>"
    mapping = worker_b.mapping("sess-1")
    assert deanonymize(out.text, mapping=mapping) == text
    restorer = StreamRestorer(mapping)
    assert restorer.feed("Hi <PERS") + restorer.feed("ON_2>") + restorer.flush() == "Hi Ivo Kral"
    assert worker_a.value_for("sess-1", "<EMAIL_ADDRESS_1>") == "olga@example.net"
    assert worker_a.value_for("sess-2", "<EMAIL_ADDRESS_1>") is None


def test_values_are_encrypted_and_bound_to_their_row(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    store = SqlMappingStore(engine, keys)
    store.placeholder_for("s-a", "PERSON", "Olga Brandt")
    store.placeholder_for("s-b", "PERSON", "Ivo Kral")
    with engine.connect() as conn:
        blobs = conn.execute(select(T.c.value, T.c.value_digest)).all()
    for blob, digest in blobs:
        assert b"Olga" not in blob and b"Ivo" not in blob and len(digest) == 32
    with engine.begin() as conn:  # move Olga's ciphertext into the other session's row
        olga = conn.execute(select(T.c.value).where(T.c.session_id == "s-a")).scalar_one()
        conn.execute(update(T).where(T.c.session_id == "s-b").values(value=olga))
    with pytest.raises(DecryptionError):
        store.mapping("s-b")


def test_expiry_touch_drop_and_purge(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    store = SqlMappingStore(engine, keys, ttl=timedelta(minutes=5))
    store.placeholder_for("old", "PERSON", "Olga Brandt")
    store.placeholder_for("live", "PERSON", "Ivo Kral")
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert store.mapping("old", at=later) == {}
    assert store.touch("live", until=later + timedelta(minutes=5)) == 1
    assert store.mapping("live", at=later) == {"<PERSON_1>": "Ivo Kral"}
    assert store.purge_expired(at=later) == 1
    assert store.drop("live") == 1 and store.mapping("live") == {}


def test_expired_value_gets_a_fresh_placeholder(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    store = SqlMappingStore(engine, keys)
    assert store.placeholder_for("s", "PERSON", "Olga") == "<PERSON_1>"
    with engine.begin() as conn:
        conn.execute(update(T).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert store.mapping("s") == {}
    assert store.placeholder_for("s", "PERSON", "Olga") == "<PERSON_1>"  # assigned afresh
    assert store.mapping("s") == {"<PERSON_1>": "Olga"}
    with engine.connect() as conn:
        assert conn.execute(select(T.c.id)).all().__len__() == 1


def race(stores: list[Any], per_worker: int) -> dict[str, str]:
    """Each store on its own thread adds ``per_worker`` values of its own and one value all
    share, to one session; no worker may fail.  The session's mapping afterwards."""
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(per_worker):
                stores[i].placeholder_for("busy", "PERSON", f"person-{i}-{j}")
                stores[i].placeholder_for("busy", "PERSON", "shared")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return dict(stores[0].mapping("busy"))


def test_concurrent_workers_never_share_a_number(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    mapping = race([SqlMappingStore(engine, keys) for _ in range(4)], per_worker=5)
    assert len(mapping) == 21 and len(set(mapping.values())) == 21
    assert sorted(int(p[8:-1]) for p in mapping) == list(range(1, 22))


@pytest.mark.parametrize(
    ("session", "placeholder"), [("bad session!", "<PERSON_1>"), ("s", "PERSON_1"), ("", "<X_1>")]
)
def test_bad_input_is_refused(engine: Engine, keys, session: str, placeholder: str) -> None:  # type: ignore[no-untyped-def]
    store = SqlMappingStore(engine, keys)
    with pytest.raises(InputError):
        store.value_for(session, placeholder)


# -- the same contract in Redis -----------------------------------------------------------

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")


@pytest.fixture
def redis_client() -> Iterator[Any]:
    if not REDIS_URL:
        pytest.skip("Redis not configured (set TSUBA_TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis, removed afterwards."""
    name = f"tsuba-test:{uuid.uuid4().hex}:"
    yield name
    for key in redis_client.scan_iter(match=name + "*"):
        redis_client.delete(key)


def test_redis_store_is_shared_sealed_and_restores(redis_client: Any, prefix: str, keys) -> None:  # type: ignore[no-untyped-def]
    worker_a = RedisMappingStore(redis_client, keys, prefix=prefix)
    worker_b = RedisMappingStore(redis_client, keys, prefix=prefix)
    text = "Olga Brandt wrote from olga@example.net"
    out = anonymize(text, analyze(text), session="sess-1", store=worker_a)
    assert out.text == "<PERSON_1> wrote from <EMAIL_ADDRESS_1>"
    assert worker_b.placeholder_for("sess-1", "PERSON", "Olga Brandt") == "<PERSON_1>"
    assert worker_b.placeholder_for("sess-1", "PERSON", "Ivo Kral") == "<PERSON_2>"
    assert worker_b.placeholder_for("sess-2", "PERSON", "Ivo Kral") == "<PERSON_1>"
    assert deanonymize(out.text, mapping=worker_b.mapping("sess-1")) == text
    assert worker_a.value_for("sess-1", "<PERSON_2>") == "Ivo Kral"
    assert worker_a.value_for("sess-1", "<PERSON_3>") is None
    raw = redis_client.hgetall(prefix + "ps:sess-1")
    assert raw and not any(b"Olga" in k or b"Olga" in v or b"olga" in v for k, v in raw.items())
    ttl_ms = redis_client.pttl(prefix + "ps:sess-1")
    assert 0 < ttl_ms <= 3600 * 1000


def test_redis_tampered_or_moved_value_does_not_decrypt(  # type: ignore[no-untyped-def]
    redis_client: Any, prefix: str, keys
) -> None:
    store = RedisMappingStore(redis_client, keys, prefix=prefix)
    store.placeholder_for("s-a", "PERSON", "Olga Brandt")
    store.placeholder_for("s-b", "PERSON", "Ivo Kral")
    olga = redis_client.hget(prefix + "ps:s-a", "v:<PERSON_1>")
    redis_client.hset(prefix + "ps:s-b", "v:<PERSON_1>", olga)  # moved to another session
    with pytest.raises(DecryptionError, match="<PERSON_1> does not decrypt"):
        store.mapping("s-b")
    flipped = bytearray(olga)
    flipped[-1] ^= 1
    redis_client.hset(prefix + "ps:s-a", "v:<PERSON_1>", bytes(flipped))
    with pytest.raises(DecryptionError):
        store.value_for("s-a", "<PERSON_1>")


def test_redis_expiry_touch_and_drop(redis_client: Any, prefix: str, keys) -> None:  # type: ignore[no-untyped-def]
    store = RedisMappingStore(redis_client, keys, prefix=prefix, ttl=timedelta(seconds=30))
    store.placeholder_for("s", "PERSON", "Olga")
    redis_client.pexpire(prefix + "ps:s", 1)  # the session's lifetime runs out
    deadline = time.monotonic() + 5
    while redis_client.exists(prefix + "ps:s") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.mapping("s") == {} and store.touch("s") == 0
    assert store.placeholder_for("s", "PERSON", "Ivo") == "<PERSON_1>"  # numbered afresh
    assert store.touch("s") == 1 and redis_client.pttl(prefix + "ps:s") > 20_000
    assert store.drop("s") == 1 and store.mapping("s") == {}


def test_redis_concurrent_workers_never_share_a_number(  # type: ignore[no-untyped-def]
    redis_client: Any, prefix: str, keys
) -> None:
    import redis

    stores = [RedisMappingStore(redis.Redis.from_url(REDIS_URL or ""), keys, prefix=prefix)
              for _ in range(4)]
    mapping = race(stores, per_worker=10)
    assert len(mapping) == 41 and len(set(mapping.values())) == 41
    assert sorted(int(p[8:-1]) for p in mapping) == list(range(1, 42))


def test_redis_unreachable_is_a_storage_error(keys) -> None:  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    store = RedisMappingStore(client, keys)
    with pytest.raises(StorageError, match="pseudonym store \\(Redis\\) failed"):
        store.placeholder_for("s", "PERSON", "Olga")
    with pytest.raises(StorageError):
        store.mapping("s")


# -- the stream restorer over any chunking ------------------------------------------------

_MAPPING = {"<PERSON_1>": "Olga Brandt", "<EMAIL_ADDRESS_12>": "o@example.net",
            "<PERSON_2>": "<PERSON_1>"}  # a value that looks like a placeholder stays literal
_PIECES = st.sampled_from(
    ["<PERSON_1>", "<EMAIL_ADDRESS_12>", "<PERSON_2>", "<PERSON_9>", "<", ">", "<PER", "_1>",
     "hello ", "a<b", "<<", "x", "é", "<PERSON_", "1", "\n", "<A_1", "<a_1>"]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=30), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_stream_restorer_equals_whole_text_restore(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    restorer = StreamRestorer(_MAPPING)
    out = "".join(restorer.feed(text[a:b]) for a, b in pairwise(bounds))
    out += restorer.flush()
    whole: list[str] = []
    assert out == restore(text, _MAPPING, unknown=whole)
    assert restorer.unknown == whole  # the same unknown placeholders, in order


def test_stream_restorer_escapes_for_json_and_reports_unknown() -> None:
    r = StreamRestorer({"<PERSON_1>": 'O"Neil\\'}, escape=lambda v: json.dumps(v)[1:-1])
    got = r.feed('{"name": "<PERS') + r.feed('ON_1>", "x": "<PERSON_7>"}') + r.flush()
    assert json.loads(got) == {"name": 'O"Neil\\', "x": "<PERSON_7>"}
    assert r.unknown == ["<PERSON_7>"]


