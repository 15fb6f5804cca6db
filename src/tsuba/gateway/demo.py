"""A DEMO upstream: a tiny OpenAI-compatible model server with canned, deterministic answers.

It exists so that ``tsuba up --demo`` shows the whole flow on one machine, and so tests and
benchmarks have a real HTTP upstream.  It is not a model: chat and completions answer
"[demo model <name>] You said: <your last message>", embeddings are derived from a hash
of the input, and /v1/models/<name>:predict sums each instance's numbers.

    python -m tsuba.gateway.demo --port 9100 [--delay 0.01] [--prefix ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import struct
import time
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

DEMO_MODELS = ("demo", "demo-restricted")
BANNER = "tsuba DEMO upstream: canned answers for trying the gateway, not a model"


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        return str(prompt[-1])
    return ""


def _count(text: str) -> int:
    return max(1, len(text.split()))


class DemoUpstream:
    """The ASGI app.  ``delay`` is the pause between streamed words (seconds)."""

    def __init__(self, *, delay: float = 0.0, prefix: str = "") -> None:
        self.delay = delay
        self.prefix = prefix
        self.requests = 0

    def reply_text(self, model: str, said: str) -> str:
        return f"{self.prefix}[demo model {model}] You said: {said}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            data: Any = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            await _json(send, 400, _error("body is not JSON"))
            return
        await self._route(send, scope["method"], scope["path"], data)

    async def _route(self, send: Send, method: str, path: str, data: Any) -> None:
        if method == "GET" and path == "/v1/models":
            cards = [{"id": n, "object": "model", "created": 0, "owned_by": "demo"}
                     for n in DEMO_MODELS]
            await _json(send, 200, {"object": "list", "data": cards})
        elif method != "POST" or not isinstance(data, dict):
            await _json(send, 404, _error(f"no route {method} {path}"))
        elif path.endswith(":predict") and path.startswith("/v1/models/"):
            await _json(send, 200, _predict(data))
        elif str(data.get("model", "")) not in DEMO_MODELS:
            await _json(send, 404, _error(f"The model '{data.get('model')}' does not exist"))
        elif path == "/v1/chat/completions":
            messages = data.get("messages") or []
            said = _last_user_text(messages)
            turns = sum(1 for msg in messages if msg.get("role") == "user")
            if turns > 1:
                said += f" (turn {turns})"
            await self._answer(send, data, data["model"], said, chat=True)
        elif path == "/v1/completions":
            prompt = _prompt_text(data.get("prompt"))
            await self._answer(send, data, data["model"], prompt, chat=False)
        elif path == "/v1/embeddings":
            await _json(send, 200, _embeddings(data, data["model"]))
        else:
            await _json(send, 404, _error(f"no route {method} {path}"))

    async def _answer(
        self, send: Send, data: dict[str, Any], model: str, said: str, *, chat: bool
    ) -> None:
        text = self.reply_text(model, said)
        max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
        words = _words(text)
        finish = "stop"
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words = words[:max_tokens]
            finish = "length"
        text = "".join(words)
        usage = {
            "prompt_tokens": _count(said) + 8,
            "completion_tokens": len(words),
            "total_tokens": _count(said) + 8 + len(words),
        }
        ident = f"{'chatcmpl' if chat else 'cmpl'}-demo{int(time.time() * 1000)}"
        created = int(time.time())
        n = data.get("n") or 1
        if not data.get("stream"):
            if chat:
                choices: list[dict[str, Any]] = [
                    {"index": i, "finish_reason": finish, "logprobs": None,
                     "message": {"role": "assistant", "content": text, "refusal": None}}
                    for i in range(n)
                ]
            else:
                choices = [{"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                           for i in range(n)]
            await _json(send, 200, {
                "id": ident, "object": "chat.completion" if chat else "text_completion",
                "created": created, "model": model, "choices": choices, "usage": usage,
            })
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        obj = "chat.completion.chunk" if chat else "text_completion"
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {"id": ident, "object": obj, "created": created, "model": model,
                       "choices": choices, **extra}
            if include_usage and "usage" not in extra:
                payload["usage"] = None
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        async def part(piece: bytes) -> None:
            await send({"type": "http.response.body", "body": piece, "more_body": True})

        if chat:
            await part(chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                               "finish_reason": None} for i in range(n)]))
        for word in words:
            if self.delay:
                await asyncio.sleep(self.delay)
            if chat:
                await part(chunk([{"index": i, "delta": {"content": word}, "finish_reason": None}
                                  for i in range(n)]))
            else:
                await part(chunk([{"index": i, "text": word, "finish_reason": None,
                                   "logprobs": None} for i in range(n)]))
        if chat:
            await part(chunk([{"index": i, "delta": {}, "finish_reason": finish}
                              for i in range(n)]))
        else:
            await part(chunk([{"index": i, "text": "", "finish_reason": finish, "logprobs": None}
                              for i in range(n)]))
        if include_usage:
            await part(chunk([], usage=usage))
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n",
                    "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _embeddings(data: dict[str, Any], model: str) -> dict[str, Any]:
    value = data.get("input")
    items = [value] if isinstance(value, str) or (
        isinstance(value, list) and value and isinstance(value[0], int)) else list(value or [])
    out = []
    tokens = 0
    for i, item in enumerate(items):
        raw = item.encode() if isinstance(item, str) else orjson.dumps(item)
        digest = hashlib.sha256(raw).digest()
        vec = [round(v / 2**31 - 1.0, 6) for v in struct.unpack(">8I", digest)]
        out.append({"object": "embedding", "index": i, "embedding": vec})
        tokens += _count(item) if isinstance(item, str) else len(item)
    return {"object": "list", "data": out, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _predict(data: dict[str, Any]) -> dict[str, Any]:
    def total(value: Any) -> float:
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, list):
            return sum(total(v) for v in value)
        if isinstance(value, dict):
            return sum(total(v) for v in value.values())
        return 0.0

    return {"predictions": [total(i) for i in data.get("instances") or []]}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


async def _json(send: Send, status: int, payload: Any) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def main(argv: list[str] | None = None) -> None:
    import uvicorn  # noqa: PLC0415 - only the standalone server needs it

    parser = argparse.ArgumentParser(description=BANNER)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed words")
    parser.add_argument("--prefix", default="", help="text put before every answer")
    args = parser.parse_args(argv)
    print(f"{BANNER}; serving on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(DemoUpstream(delay=args.delay, prefix=args.prefix), host=args.host,
                port=args.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
