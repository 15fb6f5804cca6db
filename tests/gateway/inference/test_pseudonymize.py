"""Pseudonymize and restore, end to end with the official openai SDK: values found in the
prompt reach the upstream only as <TYPE_n> placeholders and come back as the real values,
streamed (placeholders cut across chunks) or not, in text, completions and tool-call
arguments; the mapping is shared through the database (SQLite and PostgreSQL) or real Redis.

The upstream here is a small real HTTP server written for these tests: it records what it
received and answers with the user's words cut into tiny pieces, so the restoration across
chunk boundaries is what is tested, not a convenient chunking.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inference_support import ServerThread, Stack, StackFactory, free_port, request_body
from sqlalchemy import select, update

from tsuba.core.config import load_settings
from tsuba.core.errors import ConfigError
from tsuba.core.events import EventClass
from tsuba.gateway.content_guards import build_pseudonyms
from tsuba.gateway.streaming import StreamRestoration
from tsuba.guards.anonymize import restore
from tsuba.guards.anonymize.store import PseudonymRow

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")
OLGA, EMAIL = "Olga Brandt", "olga.brandt@mailbox.example"
T = PseudonymRow.__table__


class Parrot:
    """Answers with every user message so far, joined by " | ", plus ``extra``; streams it
    ``piece`` characters at a time.  With ``tool`` set it calls a tool whose arguments carry
    the first user message.  Every request body is kept in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.extra = ""
        self.piece = 3
        self.tool = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = await request_body(scope, receive, send)
        if body is None:
            return
        data = orjson.loads(body)
        self.seen.append(data)
        chat = scope["path"].endswith("/chat/completions")
        if chat:
            users = [m["content"] for m in data["messages"] if m["role"] == "user"]
        else:
            users = [data["prompt"]]
        text = " | ".join(users) + self.extra
        args = json.dumps({"name": users[0]}) if self.tool else None
        if data.get("stream"):
            await self._stream(send, text, args, chat)
        else:
            await self._whole(send, text, args, chat)

    async def _whole(self, send: Any, text: str, args: str | None, chat: bool) -> None:
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if args is not None:
                message["tool_calls"] = [{"id": "call_1", "type": "function",
                                          "function": {"name": "lookup", "arguments": args}}]
            choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        payload = {"id": "x-1", "object": "chat.completion" if chat else "text_completion",
                   "created": 1, "model": "demo", "choices": [choice],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})

    async def _stream(self, send: Any, text: str, args: str | None, chat: bool) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        obj = "chat.completion.chunk" if chat else "text_completion"

        async def event(choice: dict[str, Any]) -> None:
            chunk = {"id": "x-1", "object": obj, "created": 1, "model": "demo",
                     "choices": [choice]}
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"data: " + orjson.dumps(chunk) + b"\n\n"})

        pieces = [text[i : i + self.piece] for i in range(0, len(text), self.piece)]
        for piece in pieces:
            if chat:
                await event({"index": 0, "delta": {"content": piece}, "finish_reason": None})
            else:
                await event({"index": 0, "text": piece, "finish_reason": None})
        if args is not None:
            cut = [args[i : i + self.piece] for i in range(0, len(args), self.piece)]
            for n, piece in enumerate(cut):
                call: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
                if n == 0:
                    call.update(id="call_1", type="function")
                    call["function"]["name"] = "lookup"
                await event({"index": 0, "delta": {"tool_calls": [call]},
                             "finish_reason": None})
        if chat:
            await event({"index": 0, "delta": {}, "finish_reason": "stop"})
        else:
            await event({"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
        usage = {"id": "x-1", "object": obj, "created": 1, "model": "demo", "choices": [],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}
        await send({"type": "http.response.body", "more_body": True,
                    "body": b"data: " + orjson.dumps(usage) + b"\n\n"})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


@pytest.fixture
def parrot() -> Iterator[tuple[Parrot, str]]:
    app = Parrot()
    server = ServerThread(app).start()
    yield app, server.url + "/v1"
    server.stop()


PII_IN = {"name": "pii", "kind": "pii", "stage": "input", "action": "pseudonymize",
          "options": {"entities": ["PERSON", "EMAIL_ADDRESS"]}}
SECRETS_IN = {"name": "secrets", "kind": "secrets", "stage": "input", "action": "pseudonymize"}


def start(make_stack: StackFactory, parrot: tuple[Parrot, str], *guards: dict[str, Any],
          sessions: bool = False, session_ttl: float = 3600.0,
          purge_every: float = 300.0) -> Stack:
    gateway: dict[str, Any] = {"guards": list(guards) or [PII_IN],
                               "stream": {"window_chars": 4},
                               "sessions": {"ttl_seconds": session_ttl,
                                            "purge_interval_seconds": purge_every}}
    if sessions:
        gateway["routes"] = {"chat": {"sessions": True}}
    return make_stack(gateway=gateway, upstream_url=parrot[1])


def sdk(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.v1, api_key=stack.keys["alice"], max_retries=0)


def upstream_saw(parrot: tuple[Parrot, str]) -> str:
    return json.dumps(parrot[0].seen)


def streamed(stream: Any) -> tuple[str, str]:
    """(text, tool-call arguments) of a streamed chat completion."""
    text, args = [], []
    for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or ():
                args.append(call.function.arguments or "")
    return "".join(text), "".join(args)


def flags(stack: Stack, cid: str) -> list[str]:
    return [e["attributes"]["finding"]["reason"] for e in stack.events_for(cid)
            if e["class"] == EventClass.DETECTION_FINDING.value
            and e["attributes"]["finding"]["verdict"] == "flag"]


def test_values_never_reach_the_upstream_and_come_back_whole(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot)
    prompt = f"Draft a note to {OLGA} at {EMAIL}; cc {EMAIL}."
    reply = sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": prompt}])
    assert reply.choices[0].message.content == prompt
    seen = upstream_saw(parrot)
    assert OLGA not in seen and EMAIL not in seen and "olga" not in seen.lower()
    sent = parrot[0].seen[0]["messages"][0]["content"]
    assert sent == "Draft a note to <PERSON_1> at <EMAIL_ADDRESS_1>; cc <EMAIL_ADDRESS_1>."
    with stack.platform.engine.connect() as conn:  # a request's mapping is never written
        assert conn.execute(select(T.c.id)).all() == []

    text, _ = streamed(sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": prompt}], stream=True))
    assert text == prompt
    assert OLGA not in upstream_saw(parrot)


def test_completions_and_tool_call_arguments_are_restored(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot)
    parrot[0].tool = True
    quoted = 'Ask "Olga Brandt" about it'
    reply = sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": quoted}])
    call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"name": quoted}  # type: ignore[union-attr]
    text, args = streamed(sdk(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": quoted}], stream=True))
    assert text == quoted and json.loads(args) == {"name": quoted}
    assert OLGA not in upstream_saw(parrot)

    parrot[0].tool = False
    done = sdk(stack).completions.create(model="demo", prompt=f"Bill {EMAIL} now")
    assert done.choices[0].text == f"Bill {EMAIL} now"
    pieces = [c.choices[0].text for c in sdk(stack).completions.create(
        model="demo", prompt=f"Bill {EMAIL} now", stream=True) if c.choices]
    assert "".join(pieces) == f"Bill {EMAIL} now"
    assert EMAIL not in upstream_saw(parrot)


def test_a_session_keeps_its_placeholders_and_its_history_pseudonymous(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot, PII_IN, SECRETS_IN, sessions=True, session_ttl=20.0)
    client = sdk(stack)
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"{OLGA} owns AKIAZ7QW3RT5YU6IO2PA"}])
    sid = first.headers["x-tsuba-session-id"]
    assert first.parse().choices[0].message.content == f"{OLGA} owns AKIAZ7QW3RT5YU6IO2PA"
    second = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": f"please remind {OLGA} to rotate it"}],
        extra_headers={"x-tsuba-session-id": sid}, stream=True)
    text, _ = streamed(second)
    # The parrot repeats the whole conversation: turn one's values come back from the store.
    assert text == f"{OLGA} owns AKIAZ7QW3RT5YU6IO2PA | please remind {OLGA} to rotate it"
    history = parrot[0].seen[-1]["messages"]
    assert [m["content"] for m in history] == [
        "<PERSON_1> owns <SECRET_1>",
        "<PERSON_1> owns <SECRET_1>",  # the assistant's turn, kept as the model wrote it
        "please remind <PERSON_1> to rotate it",
    ]
    assert "AKIA" not in upstream_saw(parrot) and OLGA not in upstream_saw(parrot)
    with stack.platform.engine.connect() as conn:
        rows = conn.execute(select(T.c.session_id, T.c.value)).all()
    assert len(rows) == 2 and all(b"Olga" not in bytes(v) for _s, v in rows)
    assert sid not in {s for s, _v in rows}  # the bearer session id is never stored
    soon = datetime.now(UTC) + timedelta(seconds=5)
    with stack.platform.engine.begin() as conn:
        conn.execute(update(T).values(expires_at=soon))
    time.sleep(2.1)  # past a tenth of the TTL: the worker touches the session's mapping again
    client.chat.completions.create(  # a turn with nothing to pseudonymize still extends them
        model="demo", messages=[{"role": "user", "content": "thanks"}],
        extra_headers={"x-tsuba-session-id": sid})
    with stack.platform.engine.connect() as conn:
        expiries = conn.execute(select(T.c.expires_at)).scalars().all()
    assert all(e > soon + timedelta(seconds=10) for e in expiries)  # session TTL + 10%
    # What deleting the session calls: every worker's store is this one (the database).
    pseudonyms = build_pseudonyms(stack.settings.gateway.guards, stack.platform, 3600.0)
    assert pseudonyms is not None and pseudonyms.drop_session(sid) == 2
    with stack.platform.engine.connect() as conn:
        assert conn.execute(select(T.c.id)).all() == []


def test_invented_and_expired_placeholders_stay_and_are_flagged(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot, sessions=True)
    client = sdk(stack)
    parrot[0].extra = " and <PERSON_7>"  # a placeholder the model made up
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"please call {OLGA}"}])
    assert first.parse().choices[0].message.content == f"please call {OLGA} and <PERSON_7>"
    assert any("<PERSON_7>" in r for r in flags(stack, first.headers["x-tsuba-correlation-id"]))

    with stack.platform.engine.begin() as conn:  # the mapping outlived its session TTL
        conn.execute(update(T).values(expires_at=T.c.created_at))
    parrot[0].extra = ""
    second = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "and then?"}],
        extra_headers={"x-tsuba-session-id": first.headers["x-tsuba-session-id"]},
        stream=True)
    text, _ = streamed(second.parse())
    assert text == "please call <PERSON_1> | and then?"
    assert any("<PERSON_1>" in r and "expired" in r
               for r in flags(stack, second.headers["x-tsuba-correlation-id"]))


def test_the_running_gateway_purges_expired_mappings(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    """Rows of a session that expired leave the database by the gateway's own chores."""
    stack = start(make_stack, parrot, sessions=True, purge_every=0.2)
    client = sdk(stack)
    client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": f"write to {EMAIL}"}])
    live = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"and to {OLGA}"}])
    live_sid = live.headers["x-tsuba-session-id"]
    with stack.platform.engine.connect() as conn:
        rows = conn.execute(select(T.c.id, T.c.session_id)).all()
    assert len(rows) == 2
    pseudonyms = build_pseudonyms(stack.settings.gateway.guards, stack.platform, 3600.0)
    assert pseudonyms is not None
    live_key = pseudonyms.scope(live_sid, "").key
    [expired_session] = [r.session_id for r in rows if r.session_id != live_key]
    with stack.platform.engine.begin() as conn:
        conn.execute(update(T).where(T.c.session_id == expired_session)
                     .values(expires_at=T.c.created_at))

    def remaining() -> set[str]:
        with stack.platform.engine.connect() as conn:
            return set(conn.execute(select(T.c.session_id)).scalars().all())

    deadline = time.monotonic() + 30
    while expired_session in remaining() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remaining() == {live_key}  # the live session's mapping stays
    follow = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "again"}],
        extra_headers={"x-tsuba-session-id": live_sid})
    assert OLGA in (follow.choices[0].message.content or "")


def test_tampered_mapping_is_refused_with_a_clear_error(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot, sessions=True)
    client = sdk(stack)
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"please call {OLGA}"}])
    with stack.platform.engine.begin() as conn:
        blob = bytearray(conn.execute(select(T.c.value)).scalar_one())
        blob[-1] ^= 1
        conn.execute(update(T).values(value=bytes(blob)))
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "again"}], stream=stream,
                extra_headers={"x-tsuba-session-id": first.headers["x-tsuba-session-id"]})
        assert info.value.status_code == 503
        assert "<PERSON_1> does not decrypt" in str(info.value)
        assert OLGA not in str(info.value)


def test_output_guard_judges_the_model_text_not_the_callers_values(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    out_guard = {"name": "pii-out", "kind": "pii", "stage": "output", "action": "redact",
                 "options": {"entities": ["EMAIL_ADDRESS"]}}
    stack = start(make_stack, parrot, PII_IN, out_guard)
    parrot[0].extra = " or mallory@elsewhere.example"  # PII the model produced itself
    for stream in (False, True):
        kwargs: dict[str, Any] = {"model": "demo", "stream": stream,
                                  "messages": [{"role": "user", "content": f"Mail {EMAIL}"}]}
        if stream:
            text, _ = streamed(sdk(stack).chat.completions.create(**kwargs))
        else:
            text = sdk(stack).chat.completions.create(**kwargs).choices[0].message.content or ""
        assert text == f"Mail {EMAIL} or <EMAIL_ADDRESS>"


@pytest.mark.skipif(not REDIS_URL, reason="Redis not configured (TSUBA_TEST_REDIS_URL)")
def test_redis_store_end_to_end(make_stack: StackFactory, parrot: tuple[Parrot, str]) -> None:
    import redis

    prefix = f"tsuba-test:{uuid.uuid4().hex}:"
    guard = {**PII_IN, "store": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    stack = start(make_stack, parrot, guard, sessions=True)
    client = sdk(stack)
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"Write to {EMAIL}"}])
    assert first.parse().choices[0].message.content == f"Write to {EMAIL}"
    text, _ = streamed(client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "again"}], stream=True,
        extra_headers={"x-tsuba-session-id": first.headers["x-tsuba-session-id"]}))
    assert text == f"Write to {EMAIL} | again"
    assert EMAIL not in upstream_saw(parrot)
    r = redis.Redis.from_url(REDIS_URL or "")
    try:
        keys = list(r.scan_iter(match=prefix + "*"))
        assert len(keys) == 1  # the session's hash, expiring with the session
        assert 3600 * 1000 < r.pttl(keys[0]) <= 3960 * 1000  # session TTL + 10%
        assert not any(b"olga" in v for v in r.hgetall(keys[0]).values())
    finally:
        for key in r.scan_iter(match=prefix + "*"):
            r.delete(key)
        r.close()


def test_unreachable_store_refuses_before_forwarding(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    guard = {**PII_IN, "store": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    stack = start(make_stack, parrot, guard, sessions=True)
    started = time.monotonic()
    resp = httpx.post(stack.v1 + "/chat/completions", headers=stack.headers("alice"),
                      json={"model": "demo",
                            "messages": [{"role": "user", "content": f"Mail {EMAIL}"}]},
                      timeout=30)
    assert resp.status_code == 503
    assert resp.json()["error"]["type"] == "server_error"
    assert "pseudonym store (Redis) failed" in resp.json()["error"]["message"]
    assert parrot[0].seen == []  # nothing was forwarded
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        ({"name": "g", "kind": "injection", "stage": "input", "action": "pseudonymize"},
         "gateway.guards['g'].action 'pseudonymize' needs kind 'pii' or 'secrets'"),
        ({"name": "g", "kind": "pii", "stage": "both", "action": "pseudonymize"},
         "stage 'input'"),
        ({"name": "g", "kind": "pii", "stage": "input", "action": "pseudonymize",
          "store": "memory"}, "gateway.guards['g'].store 'memory' cannot hold pseudonyms"),
        ({"name": "g", "kind": "pii", "stage": "input", "action": "pseudonymize",
          "store": "redis"}, "gateway.guards['g'].redis_url must be set"),
    ],
)
def test_bad_pseudonymize_config_names_the_key(
    home: Any, guard: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(home, gateway={"guards": [guard]})


_MAP = {"<PERSON_1>": 'Olga "O" Brandt', "<EMAIL_ADDRESS_1>": "o@example.net"}
_BITS = st.sampled_from(["<PERSON_1>", "<EMAIL_ADDRESS_1>", "<PERSON_4>", "<", "<PER",
                         "SON_1>", "hi ", "x<y", "_1>", "é", "\n"])


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(_BITS, max_size=25), cuts=st.lists(st.integers(0, 300), max_size=10),
       route=st.sampled_from(["chat", "completions"]))
def test_stream_restoration_over_any_chunking(
    bits: list[str], cuts: list[int], route: str
) -> None:
    text = "".join(bits)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    restoration = StreamRestoration(_MAP, route)
    key = "text" if route == "completions" else "content"
    out: list[str] = []
    args_out: list[str] = []
    args = json.dumps({"who": text})
    for a, b in pairwise(bounds):
        if route == "chat":
            delta: dict[str, Any] = {"content": text[a:b]}
            chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        else:
            chunk = {"choices": [{"index": 0, "text": text[a:b], "finish_reason": None}]}
        got = restoration.feed(chunk)["choices"][0]
        out.append(got["delta"]["content"] if route == "chat" else got[key])
    if route == "chat":  # arguments cut at the same places, then the finish chunk
        for a, b in pairwise(sorted({0, len(args), *(c for c in cuts if c <= len(args))})):
            call = {"index": 0, "function": {"arguments": args[a:b]}}
            got = restoration.feed({"choices": [{"index": 0, "delta": {"tool_calls": [call]},
                                                 "finish_reason": None}]})
            args_out.append(got["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"])
        end = restoration.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        delta = end["choices"][0]["delta"]
        out.append(delta.get("content") or "")
        args_out.extend(c["function"]["arguments"] for c in delta.get("tool_calls") or ())
        assert json.loads("".join(args_out)) == {"who": restore(text, _MAP)}
    for chunk in restoration.finish():
        out.append(chunk["choices"][0].get(key) or chunk["choices"][0]["delta"]["content"])
    unknown: list[str] = []
    assert "".join(out) == restore(text, _MAP, unknown=unknown)
    assert set(restoration.unknown) == set(unknown)  # e.g. <PERSON_4>, or "<" + "SON_1>"


def test_deleting_the_session_drops_its_mapping(
    make_stack: StackFactory, parrot: tuple[Parrot, str]
) -> None:
    stack = start(make_stack, parrot, sessions=True)
    client = sdk(stack)
    first = client.chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": f"please call {OLGA}"}])
    sid = first.headers["x-tsuba-session-id"]
    with stack.platform.engine.connect() as conn:
        assert len(conn.execute(select(T.c.id)).all()) == 1
    deleted = httpx.delete(f"{stack.v1}/sessions/{sid}", headers=stack.headers("alice"))
    assert deleted.status_code == 200, deleted.text
    with stack.platform.engine.connect() as conn:
        assert conn.execute(select(T.c.id)).all() == []
