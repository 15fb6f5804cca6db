"""The shared pseudonym store on SQLite and PostgreSQL, with real envelope encryption."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from tsuba.core.errors import DecryptionError, InputError
from tsuba.guards.anonymize import StreamRestorer, anonymize, deanonymize
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


def test_concurrent_workers_never_share_a_number(engine: Engine, keys) -> None:  # type: ignore[no-untyped-def]
    stores = [SqlMappingStore(engine, keys) for _ in range(4)]
    results: dict[str, set[str]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                value = f"person-{i}-{j}"
                results.setdefault(value, set()).add(
                    stores[i].placeholder_for("busy", "PERSON", value)
                )
                stores[i].placeholder_for("busy", "PERSON", "shared")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    mapping = stores[0].mapping("busy")
    assert len(mapping) == 21 and len(set(mapping.values())) == 21
    assert sorted(int(p[8:-1]) for p in mapping) == list(range(1, 22))


@pytest.mark.parametrize(
    ("session", "placeholder"), [("bad session!", "<PERSON_1>"), ("s", "PERSON_1"), ("", "<X_1>")]
)
def test_bad_input_is_refused(engine: Engine, keys, session: str, placeholder: str) -> None:  # type: ignore[no-untyped-def]
    store = SqlMappingStore(engine, keys)
    with pytest.raises(InputError):
        store.value_for(session, placeholder)
