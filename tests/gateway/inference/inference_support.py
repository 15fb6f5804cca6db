"""Helpers for the inference gateway tests: a uvicorn server in a thread, the gateway's
configuration for the demo upstream, and a handle on a running gateway.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from processes import free_port
from tsuba.core.config import Settings
from tsuba.core.platform import Platform


async def request_body(scope: Any, receive: Any, send: Any) -> bytes | None:
    """For the test upstreams (bare ASGI apps): answer the lifespan protocol (None), or
    read the whole request body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class ServerThread:
    """An ASGI app served by uvicorn in a thread (a real HTTP server on a free port)."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        self.port = port or free_port()
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                             lifespan="on", **config)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive():
                raise RuntimeError(f"server did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 30 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def gateway_config(upstream_url: str, **extra: Any) -> dict[str, Any]:
    host = upstream_url.split("//", 1)[1].split("/", 1)[0]
    cfg: dict[str, Any] = {
        "upstreams": {"demo": {"base_url": upstream_url, "timeout_seconds": 10}},
        "models": {
            "demo": {"upstream": "demo", "routes": ["chat", "completions", "embeddings"]},
            "demo-restricted": {"upstream": "demo"},
            "tabular": {"upstream": "demo", "routes": ["predict"]},
        },
        "allowed_upstream_hosts": [host],
    }
    cfg.update(extra)
    return cfg


@dataclass
class Stack:
    """A running gateway and what the tests need to talk to it."""

    url: str
    settings: Settings
    platform: Platform
    keys: dict[str, str] = field(default_factory=dict)
    port: int = 0

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def headers(self, principal: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[principal]}"}

    def audit_events(self) -> list[dict[str, Any]]:
        log = self.platform.audit
        return [e.event().to_dict() for e in log.entries(0, log.size())]

    def events_for(self, correlation_id: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        while True:
            found = [e for e in self.audit_events() if e.get("correlation_id") == correlation_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


StackFactory = Callable[..., Stack]


def post(stack: Stack, path: str, body: Any, principal: str | None = "alice",
         **kwargs: Any) -> httpx.Response:
    headers = stack.headers(principal) if principal else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(stack.v1 + path, json=body, headers=headers, timeout=30, **kwargs)


class ScriptedUpstream:
    """An upstream whose answers the test sets: ``(status, body bytes)`` per request.

    It records every request it receives (path, headers, body), so tests can check what
    the gateway sent, and what it did not (the client's own credentials).
    """

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []
        self.default: tuple[int, bytes] = (500, b'{"error": {"message": "no reply set"}}')
        self.seen: list[dict[str, Any]] = []
        self.hang = 0.0  # seconds to stall before answering

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = await request_body(scope, receive, send)
        if body is None:
            return
        self.seen.append({
            "path": scope["path"],
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "body": body,
        })
        if self.hang:
            await asyncio.sleep(self.hang)
        status, payload = self.replies.pop(0) if self.replies else self.default
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


def chat_body(text: str = "hello", model: str = "demo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def raw_http(port: int, data: bytes, *, wait: float = 0.0, read_timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh connection, optionally pause, and read until close."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        if wait:
            time.sleep(wait)
        sock.settimeout(read_timeout)
        chunks = []
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                chunks.append(piece)
        except TimeoutError:
            pass
        return b"".join(chunks)


def sse_text(body: str) -> str:
    """The text of a chat completion stream, joined from its data events."""
    import json

    out = []
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                out.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
    return "".join(out)
