"""The I/O log: encrypted at rest, bound to its record, retained per class, purge audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from inference_support import Stack, StackFactory, chat_body
from sqlalchemy import select, update

from tsuba.core.config import IoLogSettings
from tsuba.core.errors import DecryptionError, NotFoundError
from tsuba.gateway.io_log import IoLog, IoRecordRow

T = IoRecordRow.__table__


def write(log: IoLog, classification: str = "internal", at: datetime | None = None,
          prompt: bytes = b'{"q": "tell me the launch codes"}') -> str:
    return log.write(
        principal="alice", route="chat", model="demo", correlation_id="cid-1",
        classification=classification, status=200,
        findings=[{"guard": "g", "verdict": "flag"}],
        prompt=prompt, response=b'{"a": "no"}', at=at,
    )


def test_round_trip_and_nothing_in_clear(stack: Stack) -> None:
    log = IoLog(stack.platform, IoLogSettings())
    rid = write(log)
    record = log.read(rid)
    assert record.prompt == b'{"q": "tell me the launch codes"}'
    assert record.response == b'{"a": "no"}'
    assert record.findings == [{"guard": "g", "verdict": "flag"}]
    assert record.expires_at - record.created_at == timedelta(days=30)
    with stack.platform.engine.connect() as conn:
        row = conn.execute(select(T).where(T.c.id == rid)).one()
    assert b"launch codes" not in row.prompt and row.prompt.startswith(b"TSE")
    assert log.ids_for("cid-1") == [rid]


def test_swapped_or_moved_ciphertexts_do_not_open(stack: Stack) -> None:
    log = IoLog(stack.platform, IoLogSettings())
    first, second = write(log), write(log, prompt=b"other prompt")
    with stack.platform.engine.begin() as conn:
        blob = conn.execute(select(T.c.prompt).where(T.c.id == second)).scalar_one()
        conn.execute(update(T).where(T.c.id == first).values(prompt=blob))
    with pytest.raises(DecryptionError):
        log.read(first)  # another record's prompt
    with stack.platform.engine.begin() as conn:
        resp = conn.execute(select(T.c.response).where(T.c.id == second)).scalar_one()
        conn.execute(update(T).where(T.c.id == second).values(prompt=resp))
    with pytest.raises(DecryptionError):
        log.read(second)  # its own response in the prompt's place
    with pytest.raises(NotFoundError):
        log.read("nope")


def test_retention_per_class_and_audited_purge(stack: Stack) -> None:
    log = IoLog(stack.platform, IoLogSettings(retention_days={
        "public": 10, "internal": 5, "confidential": 2, "restricted": 1}))
    now = datetime.now(UTC)
    ids = {c: write(log, c, at=now) for c in ("public", "internal", "confidential", "restricted")}
    assert log.read(ids["confidential"]).expires_at == log.read(ids["confidential"]).created_at \
        + timedelta(days=2)
    result = log.purge(at=now + timedelta(days=3))
    assert result.deleted == 2
    assert result.by_classification == {"confidential": 1, "restricted": 1}
    for c in ("confidential", "restricted"):
        with pytest.raises(NotFoundError):
            log.read(ids[c])
    assert log.read(ids["internal"]).classification == "internal"
    assert log.purge(at=now + timedelta(days=3)).deleted == 0
    purges = [e for e in stack.audit_events() if e.get("resource") == "gateway/io-log"]
    assert [p["attributes"]["deleted"] for p in purges] == [2, 0]  # every run is recorded
    assert purges[0]["attributes"]["by_classification"] == {"confidential": 1, "restricted": 1}


def io_stack(make_stack: StackFactory, **extra: Any) -> Stack:
    return make_stack(gateway={
        "routes": {"chat": {"io_log": True, "classification": "confidential"}},
        "guards": [{"name": "watch", "kind": "word", "stage": "input", "action": "flag",
                    "options": {"words": ["launch"]}}],
        **extra,
    })


def test_gateway_logs_only_opted_in_routes(make_stack: StackFactory) -> None:
    stack = io_stack(make_stack)
    log = IoLog(stack.platform, stack.settings.gateway.io_log)
    resp = httpx.post(stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body("launch at dawn"))
    cid = resp.headers["x-tsuba-correlation-id"]
    summary = next(e for e in stack.events_for(cid) if e["class"] == "api_activity")
    record = log.read(summary["attributes"]["io_record"])
    assert record.correlation_id == cid and record.classification == "confidential"
    assert orjson.loads(record.prompt)["messages"][0]["content"] == "launch at dawn"
    assert record.response is not None and b"You said: launch at dawn" in record.response
    assert record.findings[0]["guard"] == "watch" and record.findings[0]["verdict"] == "flag"

    with httpx.stream("POST", stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body("streamed", stream=True)) as streamed:
        streamed.read()
        scid = streamed.headers["x-tsuba-correlation-id"]
    (srid,) = log.ids_for(scid)
    assert log.read(srid).response == orjson.dumps({"0": "[demo model demo] You said: streamed"})

    emb = httpx.post(stack.v1 + "/embeddings", headers=stack.headers("alice"),
                     json={"model": "demo", "input": "not logged"})
    assert emb.status_code == 200
    assert log.ids_for(emb.headers["x-tsuba-correlation-id"]) == []
