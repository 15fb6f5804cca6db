"""The official openai SDK (sync, async, streaming) against the gateway and a real upstream."""

from __future__ import annotations

import asyncio

import openai
import pytest
from inference_support import Stack

CID = "x-tsuba-correlation-id"


def client(stack: Stack, principal: str | None = "alice") -> openai.OpenAI:
    key = stack.keys[principal] if principal else "no-key"
    return openai.OpenAI(base_url=stack.v1, api_key=key, max_retries=0)


def aclient(stack: Stack, principal: str = "alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.v1, api_key=stack.keys[principal], max_retries=0)


def test_chat_completion_with_a_valid_key(stack: Stack) -> None:
    raw = client(stack).chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "hello there"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "[demo model demo] You said: hello there"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    cid = raw.headers[CID]
    events = stack.events_for(cid)
    summary = events[0]
    assert summary["class"] == "api_activity" and summary["outcome"] == "success"
    assert summary["actor"] == "alice" and summary["resource"] == "model/demo"
    attrs = summary["attributes"]
    assert attrs["auth"]["method"] == "api_key" and attrs["auth"]["outcome"] == "success"
    assert attrs["authz"]["allowed"] is True
    assert attrs["limit"].startswith("admitted")
    assert attrs["upstream"]["name"] == "demo" and attrs["upstream"]["status"] == 200
    assert attrs["tokens"] == {"prompt": 10, "completion": 7}


def test_async_client_and_concurrent_requests(stack: Stack) -> None:
    async def main() -> list[str]:
        c = aclient(stack)
        replies = await asyncio.gather(*[
            c.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": f"number {i}"}]
            )
            for i in range(20)
        ])
        await c.close()
        return [r.choices[0].message.content or "" for r in replies]

    texts = asyncio.run(main())
    assert texts == [f"[demo model demo] You said: number {i}" for i in range(20)]


def test_streaming_sync_and_async(stack: Stack) -> None:
    with client(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "stream me"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "[demo model demo] You said: stream me"

    async def main() -> tuple[str, int | None]:
        c = aclient(stack)
        pieces = []
        usage = None
        stream = await c.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "async stream"}], stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            if chunk.usage is not None:
                usage = chunk.usage.completion_tokens
        await c.close()
        return "".join(pieces), usage

    text, usage = asyncio.run(main())
    assert text == "[demo model demo] You said: async stream"
    assert usage == 7


def test_usage_chunk_only_when_the_client_asked(stack: Stack) -> None:
    with client(stack).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "x"}], stream=True
    ) as stream:
        chunks = list(stream)
    assert all(not (c.usage and not c.choices) for c in chunks)


def test_completions_embeddings_and_models(stack: Stack) -> None:
    c = client(stack)
    comp = c.completions.create(model="demo", prompt="once upon", max_tokens=3)
    assert comp.choices[0].text == "[demo model demo] "
    assert comp.choices[0].finish_reason == "length"
    emb = c.embeddings.create(model="demo", input=["a", "b"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
    assert emb.data[0].embedding != emb.data[1].embedding
    assert [m.id for m in c.models.list()] == ["demo", "tabular"]
    assert [m.id for m in client(stack, "bob").models.list()] == [
        "demo", "demo-restricted", "tabular"
    ]
    assert list(client(stack, "carol").models.list()) == []
    assert c.models.retrieve("demo").id == "demo"


def test_no_key_is_401(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(stack, None).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 401
    cid = info.value.response.headers[CID]
    (event,) = stack.events_for(cid)
    assert event["class"] == "authentication" and event["outcome"] == "failure"


def test_model_not_allowed_is_403_naming_the_missing_rule(stack: Stack) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client(stack).chat.completions.create(
            model="demo-restricted", messages=[{"role": "user", "content": "hi"}]
        )
    message = info.value.body["message"]  # type: ignore[index]
    assert "no role of 'alice' grants model:invoke on model/demo-restricted" in message
    (event,) = stack.events_for(info.value.response.headers[CID])
    assert event["class"] == "authorize_session" and event["actor"] == "alice"
    assert event["attributes"]["authz"]["allowed"] is False


def test_default_deny_for_a_principal_without_roles(stack: Stack) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client(stack, "carol").chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}]
        )


def test_unknown_model_is_403_before_404(stack: Stack) -> None:
    # Not allowed: the caller learns nothing about whether the model exists.
    with pytest.raises(openai.PermissionDeniedError):
        client(stack).chat.completions.create(
            model="secret-model", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.NotFoundError) as info:
        client(stack, "bob").chat.completions.create(
            model="secret-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert "model 'secret-model' does not exist" in str(info.value)


def test_rate_limit_is_429_with_retry_after(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(limits={"principals": {"alice": {"requests": 2, "interval_seconds": 60}}})
    c = client(stack)
    for _ in range(2):
        c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
    headers = info.value.response.headers
    assert int(headers["retry-after"]) >= 1
    (event,) = stack.events_for(headers[CID])
    assert event["attributes"]["limit"].startswith("refused")
    assert event["attributes"]["status"] == 429
