"""Conversation risk stores: the in-process one and the Redis one (real Redis) keep the same
contract: decay by half-life from the stored time, turn counts, the recent tail, expiry, and
no lost update when workers add at once.

Times are passed in explicitly (``now``), as the stores take them, so decay is checked
without waiting; only Redis's own key expiry is waited for.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tsuba.core.errors import StorageError
from tsuba.guards.injection.session import (
    TAIL_CHARS,
    ConversationRisk,
    MemoryRiskStore,
    RedisRiskStore,
    RiskStore,
)

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")
DAY = 86_400.0


@pytest.fixture
def redis_prefix() -> Iterator[tuple[Any, str]]:
    if not REDIS_URL:
        pytest.skip("Redis not configured (set TSUBA_TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"tsuba-test:{uuid.uuid4().hex}:"
    yield client, prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> RiskStore:
    if request.param == "memory":
        return MemoryRiskStore()
    client, prefix = request.getfixturevalue("redis_prefix")
    return RedisRiskStore(client, prefix=prefix)


def test_evidence_decays_by_half_life_from_the_stored_time(store: RiskStore) -> None:
    got = store.add("s:a", 1.0, suspicious=True, half_life=100.0, ttl=DAY, now=1000.0)
    assert got.evidence == pytest.approx(1.0) and got.turns == 1 and got.suspicious_turns == 1
    assert store.read("s:a", half_life=100.0, now=1100.0).evidence == pytest.approx(0.5)
    assert store.read("s:a", half_life=100.0, now=1200.0).evidence == pytest.approx(0.25)
    got = store.add("s:a", 0.5, suspicious=False, half_life=100.0, ttl=DAY, now=1200.0)
    assert got.evidence == pytest.approx(0.75) and got.turns == 2 and got.suspicious_turns == 1
    # A clock running behind (another machine) never adds evidence back.
    assert store.read("s:a", half_life=100.0, now=900.0).evidence == pytest.approx(0.75)
    assert store.read("s:other", half_life=100.0, now=1200.0).turns == 0


def test_tail_keeps_the_newest_text_whole_characters(store: RiskStore) -> None:
    store.add("s:t", 0.0, suspicious=False, half_life=10.0, ttl=DAY, now=1.0, tail="ignore all")
    got = store.add("s:t", 0.0, suspicious=False, half_life=10.0, ttl=DAY, now=2.0,
                    tail="previous")
    assert got.tail.endswith("ignore all\nprevious")
    long = "é" * 2000 + "終わり"
    got = store.add("s:t", 0.0, suspicious=False, half_life=10.0, ttl=DAY, now=3.0, tail=long)
    assert got.tail.endswith("終わり") and len(got.tail) <= TAIL_CHARS
    assert set(got.tail[:-3]) <= {"é"}  # no broken character where it was cut
    assert store.read("s:t", half_life=10.0, now=3.0).tail == got.tail
    store.forget("s:t")
    assert store.read("s:t", half_life=10.0, now=3.0).tail == ""


def test_concurrent_adds_are_never_lost(store: RiskStore) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                store.add("p:busy", 0.01, suspicious=True, half_life=1e9, ttl=DAY, now=5.0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = store.read("p:busy", half_life=1e9, now=5.0)
    assert got.turns == 200 and got.suspicious_turns == 200
    assert got.evidence == pytest.approx(2.0)


def test_memory_entries_expire_after_ttl() -> None:
    store = MemoryRiskStore()
    store.add("s:x", 1.0, suspicious=True, half_life=10.0, ttl=60.0, now=0.0)
    assert store.read("s:x", half_life=10.0, now=59.0).turns == 1
    assert store.purge(now=61.0) == 1 and len(store) == 0


def test_redis_keys_expire_with_their_ttl(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    store = RedisRiskStore(client, prefix=prefix)
    store.add("s:x", 1.0, suspicious=True, half_life=10.0, ttl=0.05, now=time.time())
    deadline = time.monotonic() + 5
    while client.exists(prefix + "risk:s:x") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.read("s:x", half_life=10.0, now=time.time()).turns == 0
    store.add("s:y", 1.0, suspicious=True, half_life=10.0, ttl=3600.0, now=time.time())
    assert 3_500_000 < client.pttl(prefix + "risk:s:y") <= 3_600_000


def fixed(scores: dict[str, float]):  # type: ignore[no-untyped-def]
    # Fixed message scores (a stand-in for the detector): these tests check accumulation.
    return lambda text, source: max((v for k, v in scores.items() if k in text), default=0.0)


def test_two_workers_share_one_principals_rising_risk(redis_prefix: tuple[Any, str]) -> None:
    client, prefix = redis_prefix
    worker_a = ConversationRisk(store=RedisRiskStore(client, prefix=prefix),
                                scorer=fixed({"probe": 0.45}))
    worker_b = ConversationRisk(store=RedisRiskStore(client, prefix=prefix),
                                scorer=fixed({"probe": 0.45}))
    alone = ConversationRisk(scorer=fixed({"probe": 0.45}))  # one process's view, for contrast
    states = []
    for turn in range(6):
        worker = worker_a if turn % 2 == 0 else worker_b
        states.append(worker.observe("conv-1", f"probe {turn}", principal="mallory"))
        if turn % 2 == 0:
            alone.observe("conv-1", f"probe {turn}", principal="mallory")
    assert [s.turns for s in states] == [1, 2, 3, 4, 5, 6]
    assert all(s.message_score < 0.5 for s in states)
    assert states[-1].session_risk > 0.5  # what neither worker alone would have seen
    assert alone.peek(session="conv-1") < states[-1].session_risk
    assert worker_a.peek(principal="mallory") == pytest.approx(states[-1].principal_risk,
                                                               rel=1e-3)
    worker_b.forget("conv-1")
    assert worker_a.peek(session="conv-1") == 0.0


def test_unreachable_redis_is_a_storage_error() -> None:
    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisRiskStore(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1))
    with pytest.raises(StorageError, match="conversation risk store \\(Redis\\) failed"):
        store.add("s:x", 1.0, suspicious=True, half_life=10.0, ttl=60.0, now=1.0)
    with pytest.raises(StorageError):
        store.read("s:x", half_life=10.0, now=1.0)
