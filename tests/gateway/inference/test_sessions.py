"""Sessions: bound to their principal, encrypted, expiring, purged (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from inference_support import Stack, StackFactory, chat_body, sse_text
from sqlalchemy import select, update

from tsuba.core.config import SessionSettings
from tsuba.gateway.sessions import HEADER, SessionNotFound, SessionRow, SessionStore

HELLO = [{"role": "user", "content": "my secret plan"},
         {"role": "assistant", "content": "noted"}]


def store(stack: Stack, **cfg: float) -> SessionStore:
    return SessionStore(stack.platform, SessionSettings(**cfg))  # type: ignore[arg-type]


def test_resume_own_session(stack: Stack) -> None:
    s = store(stack)
    new = s.open("alice", None)
    assert new.new and new.id.startswith("tss_") and new.messages == []
    s.save(new, HELLO)
    again = s.open("alice", new.id)
    assert not again.new and again.messages == HELLO
    s.save(again, [*HELLO, {"role": "user", "content": "more"}])
    assert len(s.open("alice", new.id).messages) == 3


def test_another_principal_learns_nothing(stack: Stack) -> None:
    s = store(stack)
    mine = s.open("alice", None)
    s.save(mine, HELLO)
    unknown = "tss_" + "A" * 43
    messages = set()
    for principal, sid in [("bob", mine.id), ("alice", unknown), ("alice", "garbage"),
                           ("bob", mine.id[:-1] + "x")]:
        with pytest.raises(SessionNotFound) as info:
            s.open(principal, sid)
        messages.add(info.value.message)
    assert len(messages) == 1  # the same answer whether it exists, is someone else's, or bogus
    assert not s.delete("bob", mine.id)
    assert s.open("alice", mine.id).messages == HELLO


def test_nothing_readable_at_rest(stack: Stack) -> None:
    s = store(stack)
    mine = s.open("alice", None)
    s.save(mine, HELLO)
    with stack.platform.engine.connect() as conn:
        rows = conn.execute(select(SessionRow.__table__)).all()
    (row,) = rows
    assert mine.id.encode() not in row.id_hash and b"secret plan" not in row.data
    # Moving the row to another principal does not hand them the history.
    with stack.platform.engine.begin() as conn:
        conn.execute(update(SessionRow).values(principal="bob"))
    with pytest.raises(SessionNotFound):
        s.open("bob", mine.id)


def test_expiry_and_audited_purge(stack: Stack) -> None:
    s = store(stack, ttl_seconds=60)
    old = s.open("alice", None)
    s.save(old, HELLO)
    later = datetime.now(UTC) + timedelta(seconds=61)
    with pytest.raises(SessionNotFound):
        s.open("alice", old.id, at=later)
    fresh = s.open("alice", None)
    s.save(fresh, HELLO, at=later)
    assert s.purge(at=later) == 1
    assert s.open("alice", fresh.id, at=later).messages == HELLO
    purge = [e for e in stack.audit_events() if e.get("resource") == "gateway/sessions"]
    assert purge[-1]["activity"] == "delete" and purge[-1]["attributes"]["deleted"] == 1
    assert s.purge(at=later) == 0


def test_history_is_capped(stack: Stack) -> None:
    s = store(stack, max_turns=3)
    sess = s.open("alice", None)
    s.save(sess, [{"role": "user", "content": str(i)} for i in range(10)])
    assert [m["content"] for m in s.open("alice", sess.id).messages] == ["7", "8", "9"]


def test_sessions_through_the_gateway(make_stack: StackFactory) -> None:
    stack = make_stack(gateway={"routes": {"chat": {"sessions": True}}})
    url = stack.v1 + "/chat/completions"
    first = httpx.post(url, headers=stack.headers("alice"), json=chat_body("one"))
    sid = first.headers[HEADER]
    assert first.json()["choices"][0]["message"]["content"].endswith("You said: one")
    second = httpx.post(url, headers={**stack.headers("alice"), HEADER: sid},
                        json=chat_body("two"))
    assert second.json()["choices"][0]["message"]["content"].endswith("two (turn 2)")
    assert second.headers[HEADER] == sid
    with httpx.stream("POST", url, headers={**stack.headers("alice"), HEADER: sid},
                      json=chat_body("three", stream=True)) as resp:
        body = resp.read().decode()
    assert sse_text(body).endswith("three (turn 3)")
    fourth = httpx.post(url, headers={**stack.headers("alice"), HEADER: sid},
                        json=chat_body("four"))
    assert fourth.json()["choices"][0]["message"]["content"].endswith("four (turn 4)")

    stolen = httpx.post(url, headers={**stack.headers("bob"), HEADER: sid},
                        json=chat_body("let me in"))
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "session_not_found"
    (event,) = stack.events_for(stolen.headers["x-tsuba-correlation-id"])
    assert event["actor"] == "bob" and sid not in str(event)  # the id itself is never logged


def test_delete_session_ends_the_conversation(make_stack: StackFactory) -> None:
    """DELETE /v1/sessions/{id}: only the owner can; the history is gone at once; the audit
    log records it without the id (a bearer secret)."""
    stack = make_stack(gateway={"routes": {"chat": {"sessions": True}}})
    url = stack.v1 + "/chat/completions"
    sid = httpx.post(url, headers=stack.headers("alice"), json=chat_body("one")).headers[HEADER]
    gone = stack.v1 + f"/sessions/{sid}"

    stolen = httpx.delete(gone, headers=stack.headers("bob"))
    assert stolen.status_code == 404  # the same answer as for an unknown id
    assert httpx.delete(gone).status_code == 401
    kept = httpx.post(url, headers={**stack.headers("alice"), HEADER: sid},
                      json=chat_body("two"))
    assert kept.json()["choices"][0]["message"]["content"].endswith("two (turn 2)")

    deleted = httpx.delete(gone, headers=stack.headers("alice"))
    assert deleted.status_code == 200
    assert deleted.json() == {"id": sid, "object": "session", "deleted": True}
    (event,) = stack.events_for(deleted.headers["x-tsuba-correlation-id"])
    assert event["actor"] == "alice" and sid not in str(event)
    assert httpx.delete(gone, headers=stack.headers("alice")).status_code == 404
    after = httpx.post(url, headers={**stack.headers("alice"), HEADER: sid},
                       json=chat_body("three"))
    assert after.status_code == 404 and after.json()["error"]["code"] == "session_not_found"
    with stack.platform.engine.connect() as conn:
        assert conn.execute(select(SessionRow.__table__)).all() == []


def test_delete_session_without_sessions_enabled_is_404(stack: Stack) -> None:
    res = httpx.delete(stack.v1 + "/sessions/tss_" + "A" * 43, headers=stack.headers("alice"))
    assert res.status_code == 404 and "not enabled" in res.json()["error"]["message"]
