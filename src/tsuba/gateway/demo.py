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
import socket
import struct
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from tsuba.core.errors import TsubaError
from tsuba.core.identity import IdentityService
from tsuba.core.keys.files import atomic_write
from tsuba.core.platform import Platform

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


# -- tsuba up --demo ---------------------------------------------------------------------------

DEMO_PRINCIPAL = "demo"
DEMO_ROLE = "demo-model-user"
DEMO_KEY_FILE = "demo-api-key"
DEMO_REQUESTS_PER_MINUTE = 20


def demo_environment(port: int) -> dict[str, str]:
    """TSUBA_* variables that point the gateway at the demo upstream (workers inherit them).

    Nothing is written to tsuba.toml: without ``--demo`` the gateway is as configured.
    """
    host = f"127.0.0.1:{port}"
    models = {
        "demo": {"upstream": "demo", "routes": ["chat", "completions", "embeddings"]},
        "demo-restricted": {"upstream": "demo", "routes": ["chat", "completions"]},
    }
    limit = {"requests": DEMO_REQUESTS_PER_MINUTE, "interval_seconds": 60}
    return {
        "TSUBA_GATEWAY__UPSTREAMS": orjson.dumps(
            {"demo": {"base_url": f"http://{host}/v1", "timeout_seconds": 30}}
        ).decode(),
        "TSUBA_GATEWAY__MODELS": orjson.dumps(models).decode(),
        "TSUBA_GATEWAY__ALLOWED_UPSTREAM_HOSTS": orjson.dumps([host]).decode(),
        "TSUBA_GATEWAY__LIMITS__PRINCIPALS": orjson.dumps({DEMO_PRINCIPAL: limit}).decode(),
    }


@dataclass(frozen=True)
class DemoAccess:
    key: str
    created: bool  # a new key (the principal may have existed before)


def ensure_demo_principal(platform: Platform) -> DemoAccess:
    """Create (once) the principal ``demo``, allowed ``model:invoke`` on ``model/demo`` only,
    and an API key for it, kept in the data directory so later starts show the same key.
    """
    from tsuba.gateway.auth import ApiKeyService  # noqa: PLC0415 - only the demo needs it
    from tsuba.gateway.auth.keyformat import parse_key  # noqa: PLC0415

    with IdentityService(platform.engine, emit=platform.record, actor="tsuba-demo") as ids:
        if DEMO_PRINCIPAL not in {p.name for p in ids.list_principals()}:
            ids.create_principal(DEMO_PRINCIPAL, "user", display_name="tsuba demo user")
        if DEMO_ROLE not in {r.name for r in ids.list_roles()}:
            ids.create_role(DEMO_ROLE, description="may invoke the demo model only")
            ids.add_permission(DEMO_ROLE, "model:invoke", "model/demo")
        if not any(b.role == DEMO_ROLE for b in ids.list_bindings(principal=DEMO_PRINCIPAL)):
            ids.bind(DEMO_ROLE, DEMO_PRINCIPAL)
    service = ApiKeyService(platform.engine, platform.keys, emit=platform.record,
                            actor="tsuba-demo")
    path = platform.settings.path(DEMO_KEY_FILE)
    if path.exists():
        key = path.read_text().strip()
        parsed = parse_key(key)
        if parsed is not None:
            try:
                record = service.get(parsed.prefix)
            except TsubaError:
                record = None
            if record is not None and record.state(datetime.now(UTC)).value in (
                "active", "rotating"
            ):
                return DemoAccess(key, created=False)
    issued = service.create(DEMO_PRINCIPAL, description="tsuba up --demo")
    atomic_write(path, issued.key.encode() + b"\n")
    return DemoAccess(issued.key, created=True)


def demo_instructions(base_url: str, key: str) -> str:
    """What ``tsuba up --demo`` prints: the key, a curl line and an openai SDK snippet."""
    return f"""
  DEMO MODE: a built-in demo upstream answers for models 'demo' and 'demo-restricted'
  (canned answers, not a real model). Principal 'demo' may use 'demo' only,
  {DEMO_REQUESTS_PER_MINUTE} requests a minute.

  API key of principal 'demo':  {key}

  curl {base_url}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "demo", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="{base_url}/v1", api_key="{key}")
  reply = client.chat.completions.create(
      model="demo", messages=[{{"role": "user", "content": "Hello"}}])
  print(reply.choices[0].message.content)
  PY

  Then: no key -> 401, model 'demo-restricted' -> 403, past the limit -> 429;
  see each decision with 'tsuba audit tail'.
"""


class DemoServer:
    """The demo upstream served by uvicorn in a daemon thread of ``tsuba up``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn  # noqa: PLC0415

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(DemoUpstream(), log_level="warning", server_header=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="tsuba-demo-upstream",
                                       daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> DemoServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not self.server.started:
            raise TsubaError("the demo upstream did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


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
