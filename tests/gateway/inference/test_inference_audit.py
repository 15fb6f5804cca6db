"""Audit and metrics: durable before the answer (or async, by choice), fail closed, metrics."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from inference_support import Stack, StackFactory, chat_body, post

from tsuba.core.errors import StorageError


def indexed(stack: Stack, cid: str) -> list[dict[str, object]]:
    """Events with ``cid`` in the log right now (no waiting)."""
    return [e for e in stack.audit_events() if e.get("correlation_id") == cid]


def test_durable_record_precedes_the_answer(stack: Stack) -> None:
    for body, status in ((chat_body(), 200), (chat_body(model="demo-restricted"), 403)):
        resp = post(stack, "/chat/completions", body)
        assert resp.status_code == status
        assert indexed(stack, resp.headers["x-tsuba-correlation-id"])  # already there
    with httpx.stream("POST", stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body(stream=True)) as resp:
        body = resp.read()
        assert body.endswith(b"data: [DONE]\n\n")
        assert indexed(stack, resp.headers["x-tsuba-correlation-id"])


def test_concurrent_requests_each_get_their_own_record(stack: Stack) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*[
                client.post(stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                            json=chat_body(f"n{i}"))
                for i in range(30)  # below the default of 32 concurrent per principal
            ])

    replies = asyncio.run(main())
    cids = {r.headers["x-tsuba-correlation-id"] for r in replies}
    assert len(cids) == 30 and all(r.status_code == 200 for r in replies)
    logged = {e.get("correlation_id") for e in stack.audit_events()}
    assert cids <= logged
    assert stack.platform.audit.verify().ok


def test_fails_closed_when_the_audit_log_cannot_take_the_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(events: object) -> list[object]:
        raise StorageError("audit log storage error: disk I/O error")

    monkeypatch.setattr(stack.platform.audit, "append_many", broken)
    resp = post(stack, "/chat/completions", chat_body("do not answer me"))
    assert resp.status_code == 503
    err = resp.json()["error"]
    assert err["code"] == "audit_unavailable" and "disk I/O error" in err["message"]
    assert "do not answer me" not in resp.text
    with httpx.stream("POST", stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body("stream", stream=True)) as streamed:
        body = streamed.read()
    assert b"[DONE]" not in body and b"audit_unavailable" in body


def test_async_durability_answers_first_and_records_soon(make_stack: StackFactory) -> None:
    stack = make_stack(audit={"durability": "async"})
    resp = post(stack, "/chat/completions", chat_body())
    assert resp.status_code == 200
    assert stack.events_for(resp.headers["x-tsuba-correlation-id"])  # lands shortly after


def test_async_durability_keeps_serving_when_the_log_fails(
    make_stack: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(audit={"durability": "async"})

    def broken(events: object) -> list[object]:
        raise StorageError("audit log storage error: disk full")

    monkeypatch.setattr(stack.platform.audit, "append_many", broken)
    resp = post(stack, "/chat/completions", chat_body())
    assert resp.status_code == 200  # the trade made by choosing async
    time.sleep(0.2)
    metrics = httpx.get(stack.url + "/metrics").text
    assert float(re.search(r"^tsuba_gateway_audit_failures_total (\S+)$", metrics, re.M)[1]) >= 1


def test_metrics_cover_every_stage(stack: Stack) -> None:
    post(stack, "/chat/completions", chat_body())
    post(stack, "/chat/completions", chat_body(), principal=None)
    post(stack, "/chat/completions", chat_body(model="demo-restricted"))
    with httpx.stream("POST", stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body(stream=True)) as resp:
        resp.read()
    text = httpx.get(stack.url + "/metrics").text
    for needle in (
        'tsuba_gateway_requests_total{model="demo",outcome="ok",route="chat"}',
        'tsuba_gateway_requests_total{model="unknown",outcome="unauthenticated",route="chat"}',
        'tsuba_gateway_authorizations_total{allowed="false"}',
        'tsuba_gateway_limit_decisions_total{decision="admitted"}',
        'tsuba_gateway_upstream_responses_total{status="200",upstream="demo"}',
        'tsuba_gateway_time_to_first_token_seconds_count{route="chat"}',
        'tsuba_gateway_tokens_total{kind="completion",model="demo"}',
        "tsuba_gateway_audit_batch_events_count",
    ):
        assert needle in text, needle


def test_request_events_reach_the_bus_after_the_log(stack: Stack) -> None:
    from tsuba.core.bus import decode

    cids = [post(stack, "/chat/completions", chat_body(f"b{i}"))
            .headers["x-tsuba-correlation-id"] for i in range(5)]
    store = stack.platform.bus.store
    deadline = time.monotonic() + 5
    while True:
        on_bus = {decode(r).correlation_id for r in store.read(0, store.head(), limit=10_000)}
        if set(cids) <= on_bus or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(cids) <= on_bus
