"""Streaming: SSE framing, guarded windows (properties), and streams through the gateway,
including an upstream killed mid-stream and a client that walks away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inference_support import Stack, StackFactory, chat_body, free_port

from tsuba.gateway.guards import ContentBlocked, GuardChain, WordGuard
from tsuba.gateway.streaming import GuardedStream, SseSplitter, event_data

WORD = "zorblax"


# -- SSE framing -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    # Text an upstream can send: any encodable character but the line breaks SSE frames on.
    payloads=st.lists(st.text(alphabet=st.characters(codec="utf-8",
                                                     blacklist_characters="\r\n"),
                              min_size=1, max_size=30), min_size=1, max_size=8),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=10),
)
def test_splitter_yields_the_same_events_however_the_bytes_arrive(
    payloads: list[str], crlf: bool, cuts: list[int]
) -> None:
    nl = "\r\n" if crlf else "\n"
    stream = "".join(f"data: {p}{nl}{nl}" for p in payloads).encode()
    splitter = SseSplitter()
    events: list[bytes] = []
    pos = 0
    for cut in sorted(set(cuts)):
        events += splitter.feed(stream[pos:cut])
        pos = max(pos, cut)
    events += splitter.feed(stream[pos:])
    assert [event_data(e) for e in events] == [p.encode().lstrip(b" ") for p in payloads]
    assert splitter.rest() == b""


def test_event_data_joins_lines_and_skips_comments() -> None:
    assert event_data(b": keep-alive") is None
    assert event_data(b"event: x\ndata: a\ndata: b") == b"a\nb"


# -- guarded windows ---------------------------------------------------------------------------


def chunks_of(text: str, cuts: list[int], key: str = "content") -> list[dict[str, Any]]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    if key == "content":
        return [{"id": "c", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    return [{"id": "c", "choices": [{"index": 0, "text": p}]} for p in pieces]


def run_stream(stream: GuardedStream, chunks: list[dict[str, Any]]) -> tuple[str, bool]:
    """Released text, and whether the stream was blocked."""
    out: list[dict[str, Any]] = []
    key = stream.text_key
    try:
        for chunk in chunks:
            out += stream.feed(chunk)
        out += stream.finish()
        blocked = False
    except ContentBlocked:
        blocked = True
    texts = []
    for chunk in out:
        for c in chunk["choices"]:
            texts.append(c["delta"].get("content", "") if key == "content" else c["text"])
    return "".join(texts), blocked


texts = st.text(alphabet="abxlorzZOR .", max_size=80)


@settings(max_examples=500, deadline=None)
@given(
    text=texts,
    cuts=st.lists(st.integers(0, 80), max_size=20),
    window=st.integers(1, 20),
    inject=st.booleans(),
    key=st.sampled_from(["content", "text"]),
)
def test_blocked_word_never_reaches_the_client(
    text: str, cuts: list[int], window: int, inject: bool, key: str
) -> None:
    if inject:
        text = text[: len(text) // 2] + WORD.upper() + text[len(text) // 2 :]
    stream = GuardedStream(GuardChain("output", (WordGuard("w", [WORD]),)), window)
    stream.text_key = key
    released, blocked = run_stream(stream, chunks_of(text, cuts, key))
    assert blocked == (WORD in text.lower())
    if blocked:
        first = text.lower().index(WORD)
        # Only text before the word went out, and not even the word's first letter.
        assert text.startswith(released) and len(released) <= first
    else:
        assert released == text


@settings(max_examples=300, deadline=None)
@given(text=texts, cuts=st.lists(st.integers(0, 80), max_size=20), window=st.integers(1, 20))
def test_redacted_stream_never_shows_the_word(text: str, cuts: list[int], window: int) -> None:
    stream = GuardedStream(GuardChain("output", (WordGuard("w", [WORD], "redact"),)), window)
    released, blocked = run_stream(stream, chunks_of(text + " " + WORD + text, cuts))
    assert not blocked
    assert WORD not in released.lower() and "[REDACTED]" in released
    assert released.replace("[REDACTED]", "").count(" ") >= 1


def test_finish_and_tool_chunks_come_after_all_text() -> None:
    stream = GuardedStream(GuardChain("output", (WordGuard("w", [WORD]),)), 100)
    out = stream.feed({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    out += stream.feed({"id": "c", "choices": [
        {"index": 0, "delta": {"content": "hello "}}, {"index": 1, "delta": {"content": "hi"}}]})
    out += stream.feed({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out += stream.finish()
    flat = [(c["index"], c["delta"], c.get("finish_reason")) for o in out for c in o["choices"]]
    assert flat == [
        (0, {"role": "assistant"}, None),
        (0, {"content": "hello "}, None),
        (0, {}, "stop"),
        (1, {"content": "hi"}, None),
    ]


def test_a_failing_guard_blocks() -> None:
    class Broken:
        name, action, max_match = "broken", "flag", 4

        def inspect(self, text: str, stage: str) -> list[Any]:
            raise RuntimeError("model not loaded")

    stream = GuardedStream(GuardChain("output", (Broken(),)), 1)
    released, blocked = run_stream(stream, chunks_of("some text", [2, 5]))
    assert blocked and released == ""


# -- through the gateway ------------------------------------------------------------------------


def guarded_stack(make_stack: StackFactory, action: str = "block", stage: str = "output",
                  **extra: Any) -> Stack:
    return make_stack(gateway={"guards": [
        {"name": "word-filter", "kind": "word", "stage": stage, "action": action,
         "options": {"words": [WORD]}},
    ], "stream": {"window_chars": 4}, **extra})


def sdk(stack: Stack, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.v1, api_key=stack.keys["alice"], max_retries=0, **kw)


def test_output_guard_blocks_mid_stream(make_stack: StackFactory) -> None:
    stack = guarded_stack(make_stack)
    received = []
    with pytest.raises(openai.APIError) as info:
        stream = sdk(stack).chat.completions.with_raw_response.create(
            model="demo", stream=True,
            messages=[{"role": "user", "content": f"say {WORD} please"}])
        cid = stream.headers["x-tsuba-correlation-id"]
        for chunk in stream.parse():
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    text = "".join(received)
    assert text.startswith("[demo model demo] You said")  # the rest was held back
    assert "zor" not in text.lower()
    assert "was blocked by guard 'word-filter'" in str(info.value)
    events = stack.events_for(cid)
    summary = next(e for e in events if e["class"] == "api_activity")
    assert summary["attributes"]["error"]["code"] == "output_blocked"
    assert summary["attributes"]["ttft_ms"] > 0
    finding = next(e for e in events if e["class"] == "detection_finding")
    assert finding["attributes"]["finding"]["guard"] == "word-filter"
    assert finding["severity"] == "high" and finding["correlation_id"] == cid


def test_output_guard_non_stream_and_input_guard(make_stack: StackFactory) -> None:
    stack = guarded_stack(make_stack, stage="both")
    with pytest.raises(openai.BadRequestError) as info:
        sdk(stack).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": f"hi {WORD}"}])
    assert info.value.code == "input_blocked"
    # Clean text passes both ways, streamed or not.
    reply = sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "all clear"}])
    assert reply.choices[0].message.content == "[demo model demo] You said: all clear"
    with sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "all clear"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "[demo model demo] You said: all clear"


def test_output_block_without_stream(make_stack: StackFactory) -> None:
    stack = guarded_stack(make_stack)
    resp = httpx.post(stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json=chat_body(f"x {WORD}"))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "output_blocked"
    assert WORD not in resp.text


def test_redact_and_flag(make_stack: StackFactory) -> None:
    stack = guarded_stack(make_stack, action="redact")
    reply = sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": f"a {WORD} b"}])
    assert reply.choices[0].message.content == "[demo model demo] You said: a [REDACTED] b"
    with sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": f"a {WORD} b"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "[demo model demo] You said: a [REDACTED] b"

    flagged = guarded_stack(make_stack, action="flag")
    raw = sdk(flagged).chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"a {WORD} b"}])
    assert WORD in (raw.parse().choices[0].message.content or "")
    events = flagged.events_for(raw.headers["x-tsuba-correlation-id"])
    assert [e["attributes"]["finding"]["verdict"] for e in events
            if e["class"] == "detection_finding"] == ["flag"]


@pytest.fixture
def slow_upstream() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsuba.gateway.demo", "--port", str(port), "--delay", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/models", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("demo upstream did not start")
            time.sleep(0.1)
    yield proc, url
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.parametrize("guarded", [False, True])
def test_upstream_killed_mid_stream(
    make_stack: StackFactory, slow_upstream: tuple[subprocess.Popen[bytes], str], guarded: bool
) -> None:
    proc, url = slow_upstream
    extra: dict[str, Any] = {}
    if guarded:
        extra["guards"] = [{"name": "g", "kind": "word", "stage": "output",
                            "options": {"words": [WORD]}}]
    stack = make_stack(upstream_url=url, gateway=extra)
    received = []
    with pytest.raises(openai.APIError) as info:
        raw = sdk(stack).chat.completions.with_raw_response.create(
            model="demo", stream=True,
            messages=[{"role": "user", "content": "a long answer " * 10}])
        cid = raw.headers["x-tsuba-correlation-id"]
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
                if len(received) == 3:
                    os.kill(proc.pid, signal.SIGKILL)
    assert "broke off the stream" in str(info.value)
    assert len(received) >= 3
    (summary,) = stack.events_for(cid)
    assert summary["outcome"] == "failure"
    assert summary["attributes"]["error"]["code"] == "upstream_error"
    assert summary["attributes"]["upstream"]["status"] == 200


def test_client_walking_away_frees_its_slot(
    make_stack: StackFactory, slow_upstream: tuple[subprocess.Popen[bytes], str]
) -> None:
    _proc, url = slow_upstream
    stack = make_stack(upstream_url=url,
                       limits={"principals": {"alice": {"concurrent": 1}}})
    with httpx.Client(timeout=10) as client, client.stream(
        "POST", stack.v1 + "/chat/completions", headers=stack.headers("alice"),
        json=chat_body("a long answer " * 20, stream=True),
    ) as resp:
        cid = resp.headers["x-tsuba-correlation-id"]
        next(resp.iter_bytes())
    # The gateway notices, stops, records, and releases the concurrency slot.
    events = stack.events_for(cid)
    assert events and events[0]["attributes"]["status"] == 499
    reply = httpx.post(stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                       json=chat_body("short"), timeout=10)
    assert reply.status_code == 200
