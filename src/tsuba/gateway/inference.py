"""The OpenAI-compatible inference routes, handled at the ASGI level.

/v1/chat/completions (with ``stream: true``), /v1/completions, /v1/embeddings, /v1/models,
/v1/models/{model} and /v1/predict/{model} (KServe V1 JSON for classic ML models).  The
handlers are plain ASGI callables: no dependency injection, the body is read once (bounded
in size and time), parsed and validated in one pass, and forwarded as bytes; the OpenAPI
contract is still complete because :func:`openapi_paths` describes them.

Every request, answered or refused, gets an ``x-tsuba-correlation-id`` header and audit
events carrying the same id; with durable audit those are committed before the response
completes (for streams: before the final ``[DONE]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tsuba.core import errors as e
from tsuba.core.config import ModelSettings
from tsuba.gateway import inference_metrics as m
from tsuba.gateway import metrics as http_metrics
from tsuba.gateway.content_guards import PseudonymScope, conversation_for, last_user_text
from tsuba.gateway.context import Admission, AuthRequest, Identity
from tsuba.gateway.errors import status_for
from tsuba.gateway.guards import Assign, ContentBlocked, Conversation, GuardChain, Verdict
from tsuba.gateway.pipeline import Exchange, Gateway
from tsuba.gateway.sessions import HEADER as SESSION_HEADER
from tsuba.gateway.sessions import Session
from tsuba.gateway.streaming import (
    DONE,
    GuardedStream,
    SseSplitter,
    StreamRestoration,
    event_data,
    frame,
)
from tsuba.gateway.upstreams import Upstream, UpstreamStream, upstream_error
from tsuba.gateway.validation import (
    ROUTE_ADAPTERS,
    BodyTooLarge,
    estimate_tokens,
    message_text_chars,
    parse,
)

log = logging.getLogger("tsuba.gateway")

CORRELATION_HEADER = "x-tsuba-correlation-id"
_CID = CORRELATION_HEADER.encode()
_JSON = (b"content-type", b"application/json")
_SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_MAX_UPSTREAM_ERROR = 64 << 10
_UPSTREAM_PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
}


class BodyTimeout(e.InputError):
    code = "request_timeout"


class ClientGone(Exception):
    """The client went away before the answer was complete."""


class RecordFailed(e.StorageError):
    code = "audit_unavailable"


def http_status(exc: e.TsubaError) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, BodyTimeout):
        return 408
    return status_for(exc)


def error_json(exc: e.TsubaError, status: int) -> bytes:
    kind = (
        "invalid_request_error" if status < 500 and not isinstance(exc, e.RateLimitedError)
        else "rate_limit_error" if status == 429
        else "server_error"
    )
    if status == 401:
        kind = "authentication_error"
    elif status == 403:
        kind = "permission_error"
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": kind,
                "code": exc.code,
                "param": getattr(exc, "param", None),
            }
        }
    )


def error_headers(exc: e.TsubaError) -> list[tuple[bytes, bytes]]:
    if isinstance(exc, e.RateLimitedError):
        out = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
        if not any(k == b"retry-after" for k, _ in out):
            out.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        return out
    if isinstance(exc, e.AuthenticationError):
        return [(b"www-authenticate", b'Bearer realm="tsuba"')]
    return []


async def read_body(receive: Receive, max_bytes: int, timeout: float) -> bytes:
    """The whole request body, refused past ``max_bytes`` or when it trickles past ``timeout``."""
    message = await receive()  # uvicorn has the first part ready with the headers
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
        return body
    parts = [body]
    size = len(body)
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(max_bytes)
                parts.append(chunk)
                if not message.get("more_body"):
                    break
    except TimeoutError:
        raise BodyTimeout(
            f"the request body did not arrive within {timeout:g} s: send it at once"
        ) from None
    return b"".join(parts)


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body is larger than the gateway's limit of {limit} bytes")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _target(scope: Scope) -> str:
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    qs: bytes = scope.get("query_string") or b""
    return (raw + (b"?" + qs if qs else b"")).decode("latin-1")


def _session_tag(session_id: str) -> str:
    """What the audit log keeps of a session id: a hash prefix, never the bearer secret."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, length, *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


Handler = Callable[[Gateway, Exchange, Scope, Receive, Send], Awaitable[None]]


class Endpoint:
    """One inference route: a bare ASGI app that runs the stage chain and always records."""

    def __init__(self, route: str, handler: Handler) -> None:
        self.route = route
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw: Gateway = scope["app"].state.gateway
        ex = Exchange(self.route, scope["method"], scope["path"], _client_ip(scope))
        sent = _SendTracker(send)
        try:
            await self.handler(gw, ex, scope, receive, sent)
        except ClientGone:
            await _release(ex)
            ex.status = 499
            ex.error = e.InputError("the client disconnected before the answer was complete")
            with contextlib.suppress(e.TsubaError):
                await gw.record(ex)
        except e.TsubaError as exc:
            await _release(ex)
            await _refuse(gw, ex, exc, sent)
        except Exception as exc:  # a bug must still answer, and still be recorded
            log.exception("inference request failed")
            await _release(ex)
            await _refuse(
                gw, ex, e.TsubaError(f"internal error ({type(exc).__name__})"), sent
            )


class _SendTracker:
    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


async def _release(ex: Exchange) -> None:
    admission, ex.admission = ex.admission, None
    if admission is not None:
        with contextlib.suppress(Exception):
            await admission.release()


async def _refuse(gw: Gateway, ex: Exchange, exc: e.TsubaError, send: _SendTracker) -> None:
    ex.error = exc
    ex.status = http_status(exc)
    try:
        await gw.record(ex)
    except e.TsubaError as rec:
        log.error("could not record refused request %s: %s", ex.correlation_id, rec)
    if send.started:
        return  # a stream already told the client (see StreamRelay); nothing more to send
    headers = [(_CID, ex.correlation_id.encode()), *error_headers(exc)]
    await _send_json(send, ex.status, error_json(exc, ex.status), headers)


async def _record_or_fail(gw: Gateway, ex: Exchange) -> None:
    """Durable audit before the answer completes; if it cannot be written, nothing is sent."""
    try:
        await gw.record(ex)
    except e.TsubaError as exc:
        raise RecordFailed(
            "the request could not be recorded in the audit log, so it was not answered: "
            f"{exc.message}"
        ) from exc


def _response_headers(ex: Exchange, admission: Admission | None) -> list[tuple[bytes, bytes]]:
    headers = [(_CID, ex.correlation_id.encode())]
    if admission is not None:
        headers.extend((k.lower().encode(), v.encode()) for k, v in admission.headers.items())
    return headers


# -- the stages shared by the model routes ------------------------------------------------


async def _front(
    gw: Gateway, ex: Exchange, scope: Scope, receive: Receive
) -> tuple[bytes, dict[str, str], Identity]:
    raw = await read_body(
        receive, gw.validation.max_body_bytes, gw.validation.body_timeout_seconds
    )
    headers = _headers(scope)
    identity = await gw.authenticate(
        ex, AuthRequest(ex.method, _target(scope), headers, raw, ex.client_ip)
    )
    return raw, headers, identity


def _guard_input(
    gw: Gateway,
    ex: Exchange,
    route: str,
    body: dict[str, Any],
    chain: GuardChain,
    *,
    scope: PseudonymScope | None = None,
    conversation: Conversation | None = None,
) -> None:
    """Input guards; with a pseudonym scope or a conversation it does I/O (run in a thread).

    The conversation is scored after the messages were guarded, so the recent text it keeps
    holds placeholders, not values; a message another guard blocked still counts as a
    probe, but its text is not kept.
    """
    assign = scope.assign if scope is not None else None
    if route == "chat":
        try:
            _guard_messages(gw, ex, body["messages"], chain, assign)
        except ContentBlocked:
            if conversation is not None:
                chain.converse(last_user_text(body["messages"]), conversation, remember=False)
            raise
        if conversation is not None:
            found = chain.converse(last_user_text(body["messages"]), conversation)
            if found:
                ex.note_guard("input", found)
                if any(f.verdict is Verdict.BLOCK for f in found):
                    raise ContentBlocked("input", found)
        return
    key = "prompt" if route == "completions" else "input"
    value = body.get(key)
    if isinstance(value, str):
        body[key] = gw.guard_text(ex, chain, value, assign)
    elif isinstance(value, list) and value and isinstance(value[0], str):
        body[key] = [gw.guard_text(ex, chain, v, assign) for v in value]


def _guard_messages(
    gw: Gateway, ex: Exchange, messages: list[Any], chain: GuardChain, assign: Assign | None
) -> None:
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            msg["content"] = gw.guard_text(ex, chain, content, assign)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part.get("text"), str):
                    part["text"] = gw.guard_text(ex, chain, part["text"], assign)


def _guard_output(
    gw: Gateway, ex: Exchange, route: str, result: dict[str, Any], chain: GuardChain
) -> bool:
    changed = False
    for choice in result.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if route == "chat":
            msg = choice.get("message")
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                new = gw.guard_text(ex, chain, msg["content"])
                if new != msg["content"]:
                    msg["content"] = new
                    changed = True
        elif isinstance(choice.get("text"), str):
            new = gw.guard_text(ex, chain, choice["text"])
            if new != choice["text"]:
                choice["text"] = new
                changed = True
    return changed


def _usage(ex: Exchange, usage: Any, model: str) -> int | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    total = usage.get("total_tokens")
    if isinstance(prompt, int):
        ex.prompt_tokens = prompt
        m.TOKENS.labels(model, "prompt").inc(prompt)
    if isinstance(completion, int):
        ex.completion_tokens = completion
        m.TOKENS.labels(model, "completion").inc(completion)
    if isinstance(total, int):
        return total
    if isinstance(prompt, int):
        return prompt + (completion if isinstance(completion, int) else 0)
    return None


async def _settle(gw: Gateway, ex: Exchange, used: int | None, reserved: int) -> None:
    """Settle the reservation with real usage; without usage the reservation stands."""
    admission, ex.admission = ex.admission, None
    if admission is None:
        return
    tokens = reserved if used is None else used
    prompt = ex.prompt_tokens if ex.prompt_tokens is not None else tokens
    await admission.settle(tokens, gw.cost(ex.model or "", prompt, ex.completion_tokens or 0))


@dataclass(slots=True)
class Call:
    """A request that passed authentication, authorization and limits: what to send where."""

    gw: Gateway
    ex: Exchange
    identity: Identity
    cfg: ModelSettings
    upstream: Upstream
    path: str
    body: dict[str, Any]
    admission: Admission
    reserved: int
    client_model: str
    session: Session | None = None
    sent_messages: list[dict[str, Any]] = field(default_factory=list)
    pseudonyms: PseudonymScope | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = _response_headers(self.ex, self.admission)
        if self.session is not None:
            headers.append((SESSION_HEADER.encode(), self.session.id.encode()))
        return headers

    async def save_session(self, reply: dict[str, Any] | None) -> None:
        if self.session is not None:
            history = [*self.session.messages, *self.sent_messages, *([reply] if reply else [])]
            await self.gw.sessions.asave(self.session, history)


async def _model_route(
    gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    call = await _prepare(gw, ex, scope, receive)
    if ex.stream:
        await StreamRelay(call, receive, send).run()
    else:
        await _unary(call, send)


async def _prepare(gw: Gateway, ex: Exchange, scope: Scope, receive: Receive) -> Call:
    """authenticate -> validate -> authorize -> session -> admit -> input guards."""
    route = ex.route
    raw, headers, identity = await _front(gw, ex, scope, receive)
    checked = parse(route, raw, gw.validation)
    model = scope["path_params"]["model"] if route == "predict" else checked.model
    gw.authorize(ex, identity, model)
    cfg = gw.model(model, route)
    body = checked.body
    ex.stream = checked.stream

    session: Session | None = None
    history_chars = 0
    if route == "chat" and gw.route(route).sessions:
        session = await gw.sessions.aopen(identity.principal, headers.get(SESSION_HEADER))
        ex.session = _session_tag(session.id)
        history_chars = sum(message_text_chars(msg) for msg in session.messages)
    reserved = estimate_tokens(checked, cfg.default_max_tokens) + history_chars // 4
    prompt = (checked.input_chars + history_chars) // 4 + 1
    admission = await gw.admit(
        ex, identity, model, reserved, gw.cost(model, prompt, reserved - prompt)
    )
    chain_in = gw.chain(route, model, "input")
    pseudonyms: PseudonymScope | None = None
    if chain_in and route != "predict":
        if chain_in.pseudonymizes and gw.pseudonyms is not None:
            pseudonyms = gw.pseudonyms.scope(session.id if session else None, ex.correlation_id)
        conversation = None
        if route == "chat" and chain_in.converses:
            conversation = conversation_for(
                identity.principal, session.id if session else None, body["messages"]
            )
        if pseudonyms is not None or conversation is not None:  # stores are read and written
            await asyncio.to_thread(
                _guard_input, gw, ex, route, body, chain_in, scope=pseudonyms,
                conversation=conversation,
            )
        else:
            _guard_input(gw, ex, route, body, chain_in)
    sent: list[dict[str, Any]] = []
    if session is not None:
        sent = list(body["messages"])
        body["messages"] = [*session.messages, *sent]
    upstream_model = cfg.upstream_model or model
    if route == "predict":
        path = f"/models/{quote(upstream_model, safe='')}:predict"
    else:
        body["model"] = upstream_model
        path = _UPSTREAM_PATHS[route]
    upstream = gw.upstream(cfg)
    ex.upstream = upstream.name
    return Call(gw, ex, identity, cfg, upstream, path, body, admission,
                reserved if route != "predict" else 0, model, session, sent, pseudonyms)


async def _unary(call: Call, send: Send) -> None:
    """upstream -> output guards -> settle -> session, I/O log -> record -> answer."""
    gw, ex, upstream = call.gw, call.ex, call.upstream
    reply = await upstream.post(call.path, orjson.dumps(call.body))
    ex.upstream_status = reply.status
    ex.upstream_seconds = reply.seconds
    m.UPSTREAM.labels(upstream.name, str(reply.status)).inc()
    m.UPSTREAM_LATENCY.labels(upstream.name).observe(reply.seconds)
    if reply.status != 200:
        raise upstream_error(upstream.name, reply.status, reply.body, reply.headers)
    try:
        result = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise e.UpstreamError(f"upstream '{upstream.name}' answered with malformed JSON")
    changed = False
    chain_out = gw.chain(ex.route, call.client_model, "output")
    if chain_out and ex.route in ("chat", "completions"):
        changed = _guard_output(gw, ex, ex.route, result, chain_out)
    if call.cfg.upstream_model and result.get("model") == call.cfg.upstream_model:
        result["model"] = call.client_model
        changed = True
    await _settle(gw, ex, _usage(ex, result.get("usage"), call.client_model), call.reserved)
    out = orjson.dumps(result) if changed else reply.body
    await call.save_session(_first_message(result))
    await _io_log(call, out)
    out = await _restore(call, result, out)
    await _record_or_fail(gw, ex)
    await _send_json(send, 200, out, call.headers())


async def _restore(call: Call, result: dict[str, Any], out: bytes) -> bytes:
    """Real values back into the answer, after output guards, session and I/O log saw the
    model's own text; an unknown placeholder stays and is flagged."""
    scope = call.pseudonyms
    if scope is None:
        return out
    if call.ex.route not in ("chat", "completions"):  # embeddings: nothing to restore
        await _end_scope(scope)
        return out
    await asyncio.to_thread(scope.load)
    changed = scope.restore_result(result, call.ex.route)
    call.ex.note_guard("output", scope.findings())
    await _end_scope(scope)
    return orjson.dumps(result) if changed else out


async def _end_scope(scope: PseudonymScope) -> None:
    try:
        await asyncio.to_thread(scope.end)
    except e.TsubaError as exc:  # the mapping expires on its own
        log.warning("could not drop a request's pseudonym mapping: %s", exc.message)


def _first_message(result: dict[str, Any]) -> dict[str, Any] | None:
    choices = result.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        msg = choices[0].get("message")
        if isinstance(msg, dict) and msg.get("role") == "assistant":
            return {"role": "assistant", "content": msg.get("content")}
    return None


async def _io_log(call: Call, response: bytes | None) -> None:
    ex = call.ex
    rs = call.gw.route(ex.route)
    if not rs.io_log:
        return
    ex.io_record = await call.gw.io_log.awrite(
        principal=call.identity.principal,
        route=ex.route,
        model=ex.model,
        correlation_id=ex.correlation_id,
        classification=rs.classification,
        status=ex.status,
        findings=[{"stage": s, **f.to_dict()} for s, f in ex.findings],
        prompt=orjson.dumps(call.body),
        response=response,
    )


# -- streaming ------------------------------------------------------------------------------


async def _watch_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class StreamRelay:
    """Relays one upstream SSE stream to the client, through the output guards if any.

    The upstream is always asked for usage (``stream_options.include_usage``) so the
    reservation can be settled with real numbers; the usage chunk reaches the client only
    if it asked for it.  Once the response has started, failures (a guard blocking, the
    upstream breaking off) end the stream with an OpenAI-style ``error`` event.
    """

    def __init__(self, call: Call, receive: Receive, send: Send) -> None:
        self.call = call
        self.receive = receive
        self.send = send
        ex = call.ex
        options = call.body.get("stream_options") or {}
        self.client_usage = bool(options.get("include_usage"))
        call.body["stream_options"] = {**options, "include_usage": True}
        chain = call.gw.chain(ex.route, call.client_model, "output")
        self.guarded = GuardedStream(chain, call.gw.window_chars) if chain else None
        if self.guarded is not None and ex.route == "completions":
            self.guarded.text_key = "text"
        self.io_log = call.gw.route(ex.route).io_log
        self.collect = call.session is not None or self.io_log
        self.restoration: StreamRestoration | None = None
        self.fast = self.guarded is None and not self.collect and call.pseudonyms is None
        self.texts: dict[int, list[str]] = {}
        self.usage: Any = None
        self.watcher: asyncio.Future[None] | None = None

    async def run(self) -> None:
        call, ex, upstream = self.call, self.call.ex, self.call.upstream
        failure: e.TsubaError | None = None
        gone = False
        async with upstream.stream(call.path, orjson.dumps(call.body)) as resp:
            ex.upstream_status = resp.status_code
            m.UPSTREAM.labels(upstream.name, str(resp.status_code)).inc()
            if resp.status_code != 200:
                data = await resp.read(_MAX_UPSTREAM_ERROR)
                raise upstream_error(upstream.name, resp.status_code, data, resp.headers)
            if call.pseudonyms is not None:  # before the answer starts: a failure is a 503
                mapping = await asyncio.to_thread(call.pseudonyms.load)
                self.restoration = StreamRestoration(mapping, ex.route)
            await self.send({"type": "http.response.start", "status": 200,
                             "headers": [*_SSE, *call.headers()]})
            self.watcher = asyncio.ensure_future(_watch_disconnect(self.receive))
            try:
                await self._pump(resp)
            except ClientGone:
                gone = True
            except (ContentBlocked, e.UpstreamError) as exc:
                failure = exc
            finally:
                if self.guarded is not None:
                    ex.note_guard("output", self.guarded.findings)
                if self.restoration is not None and call.pseudonyms is not None:
                    call.pseudonyms.unknown.extend(self.restoration.unknown)
                    ex.note_guard("output", call.pseudonyms.findings())
                self.watcher.cancel()
        ex.upstream_seconds = time.perf_counter() - ex.started
        m.UPSTREAM_LATENCY.labels(upstream.name).observe(ex.upstream_seconds)
        await _settle(call.gw, ex, _usage(ex, self.usage, call.client_model), call.reserved)
        if call.pseudonyms is not None:
            await _end_scope(call.pseudonyms)
        if gone:
            raise ClientGone
        if failure is not None:
            await self._fail(failure)
            return
        await self._finish()

    async def _pump(self, resp: UpstreamStream) -> None:
        splitter = SseSplitter()
        upstream = self.call.upstream.name
        async for raw in resp.chunks():
            for event in splitter.feed(raw):
                payload = event_data(event)
                if payload is None:
                    continue
                if payload == DONE:
                    await self._flush()
                    return
                if self.fast and b'"usage":{' not in payload and b'"usage": {' not in payload \
                        and b'"error"' not in payload:
                    await self._emit(payload)  # passed on untouched
                    continue
                chunk = _chunk(payload, upstream)
                if isinstance(chunk.get("usage"), dict):
                    self.usage = chunk["usage"]
                if "error" in chunk:
                    raise e.UpstreamError(
                        f"upstream '{upstream}' reported an error mid-stream: "
                        + _error_text(chunk["error"])
                    )
                await self._emit_chunks(self.guarded.feed(chunk) if self.guarded else [chunk])
        await self._flush()

    async def _flush(self) -> None:
        if self.guarded is not None:
            await self._emit_chunks(self.guarded.finish())
        if self.restoration is not None:
            for chunk in self.restoration.finish():
                await self._emit(orjson.dumps(chunk))

    async def _emit(self, payload: bytes) -> None:
        if self.watcher is not None and self.watcher.done():
            raise ClientGone
        ex = self.call.ex
        if ex.ttft_seconds is None:
            ex.ttft_seconds = time.perf_counter() - ex.started
            m.TTFT.labels(ex.route).observe(ex.ttft_seconds)
        await self.send({"type": "http.response.body", "body": frame(payload), "more_body": True})

    async def _emit_chunks(self, chunks: list[dict[str, Any]]) -> None:
        for chunk in chunks:
            if not self.client_usage and not chunk.get("choices") and chunk.get("usage"):
                continue
            if self.collect:  # the session and I/O log keep the model's text, placeholders in
                _collect(self.texts, chunk, self.call.ex.route)
            restored = chunk if self.restoration is None else self.restoration.feed(chunk)
            await self._emit(orjson.dumps(restored))

    async def _end(self, payload: bytes) -> None:
        await self.send({"type": "http.response.body", "body": frame(payload), "more_body": False})

    async def _fail(self, failure: e.TsubaError) -> None:
        ex = self.call.ex
        ex.error = failure
        ex.status = http_status(failure)
        try:
            await _record_or_fail(self.call.gw, ex)
        finally:
            await self._end(error_json(failure, ex.status))

    async def _finish(self) -> None:
        call = self.call
        if call.session is not None:
            await call.save_session(
                {"role": "assistant", "content": "".join(self.texts.get(0, []))}
            )
        if self.io_log:
            answer = {str(k): "".join(v) for k, v in sorted(self.texts.items())}
            await _io_log(call, orjson.dumps(answer))
        try:
            await _record_or_fail(call.gw, call.ex)
        except RecordFailed as exc:
            await self._end(error_json(exc, 503))
            raise
        await self._end(DONE)


def _error_text(err: Any) -> str:
    msg = err.get("message") if isinstance(err, dict) else err
    text: str = "".join(ch for ch in str(msg) if ch.isprintable())
    return text[:500]


def _chunk(payload: bytes, upstream: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise e.UpstreamError(f"upstream '{upstream}' sent a malformed stream event")
    return chunk


def _collect(texts: dict[int, list[str]], chunk: dict[str, Any], route: str) -> None:
    for c in chunk.get("choices") or ():
        if not isinstance(c, dict):
            continue
        piece = (c.get("delta") or {}).get("content") if route == "chat" else c.get("text")
        if isinstance(piece, str) and piece:
            texts.setdefault(int(c.get("index", 0)), []).append(piece)


# -- models ---------------------------------------------------------------------------------


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tsuba"}


async def _list_models(
    gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    identity = (await _front(gw, ex, scope, receive))[2]
    names = [n for n in sorted(gw.models) if gw.allowed(identity, n)]
    ex.authz_reason = f"{len(names)} of {len(gw.models)} models allowed"
    await _record_or_fail(gw, ex)
    body = orjson.dumps({"object": "list", "data": [_model_card(n) for n in names]})
    await _send_json(send, 200, body, _response_headers(ex, None))


async def _get_model(
    gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    identity = (await _front(gw, ex, scope, receive))[2]
    name = scope["path_params"]["model"]
    gw.authorize(ex, identity, name)
    if name not in gw.models:
        raise e.NotFoundError(f"model '{name}' does not exist")
    await _record_or_fail(gw, ex)
    await _send_json(send, 200, orjson.dumps(_model_card(name)), _response_headers(ex, None))


async def _delete_session(
    gw: Gateway, ex: Exchange, scope: Scope, receive: Receive, send: Send
) -> None:
    """End a conversation now: its history and its pseudonym mapping go at once instead of
    at expiry.  Only the principal that owns the session can delete it; the conversation's
    injection risk is kept (deleting a session must not reset the record of probing)."""
    ex.path = "/v1/sessions/{session}"  # the id is a bearer secret: never in the audit log
    session_id = scope["path_params"]["session"]
    ex.session = _session_tag(session_id)
    identity = (await _front(gw, ex, scope, receive))[2]
    if not any(r.sessions for r in gw.settings.gateway.routes.values()):
        raise e.NotFoundError("sessions are not enabled on this gateway")
    deleted = await asyncio.to_thread(gw.sessions.delete, identity.principal, session_id)
    if not deleted:
        raise e.NotFoundError("no such session for this caller (unknown, expired or not yours)")
    if gw.pseudonyms is not None:
        await asyncio.to_thread(gw.pseudonyms.drop_session, session_id)
    ex.authz_reason = "the caller owns the session"
    await _record_or_fail(gw, ex)
    body = orjson.dumps({"id": session_id, "object": "session", "deleted": True})
    await _send_json(send, 200, body, _response_headers(ex, None))


_EP_CHAT = Endpoint("chat", _model_route)
_EP_COMPLETIONS = Endpoint("completions", _model_route)
_EP_EMBEDDINGS = Endpoint("embeddings", _model_route)
_EP_PREDICT = Endpoint("predict", _model_route)
_EP_MODELS = Endpoint("models", _list_models)
_EP_MODEL = Endpoint("models", _get_model)
_EP_SESSION = Endpoint("sessions", _delete_session)

# (method, path or path prefix) -> (endpoint, route template)
_EXACT: dict[tuple[str, str], tuple[Endpoint, str]] = {
    ("POST", "/v1/chat/completions"): (_EP_CHAT, "/v1/chat/completions"),
    ("POST", "/v1/completions"): (_EP_COMPLETIONS, "/v1/completions"),
    ("POST", "/v1/embeddings"): (_EP_EMBEDDINGS, "/v1/embeddings"),
    ("GET", "/v1/models"): (_EP_MODELS, "/v1/models"),
}
_PREFIXED: tuple[tuple[str, str, Endpoint, str, str], ...] = (
    ("POST", "/v1/predict/", _EP_PREDICT, "/v1/predict/{model}", "model"),
    ("GET", "/v1/models/", _EP_MODEL, "/v1/models/{model}", "model"),
    ("DELETE", "/v1/sessions/", _EP_SESSION, "/v1/sessions/{session}", "session"),
)


def routes() -> list[BaseRoute]:
    """The routes for the framework's router (which also answers 405 for other methods)."""
    return [
        Route("/v1/chat/completions", _EP_CHAT, methods=["POST"]),
        Route("/v1/completions", _EP_COMPLETIONS, methods=["POST"]),
        Route("/v1/embeddings", _EP_EMBEDDINGS, methods=["POST"]),
        Route("/v1/predict/{model:path}", _EP_PREDICT, methods=["POST"]),
        Route("/v1/models", _EP_MODELS, methods=["GET"]),
        Route("/v1/models/{model:path}", _EP_MODEL, methods=["GET"]),
        Route("/v1/sessions/{session}", _EP_SESSION, methods=["DELETE"]),
    ]


class FastPath:
    """Middleware that hands inference requests straight to their endpoint.

    The framework's middleware stack and router cost about 70 us a request, a large part of
    what the gateway may add; the endpoints catch and answer every error themselves, so
    they need neither.  HTTP metrics are kept as the metrics middleware keeps them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            found = _EXACT.get((method, path))
            if found is None:
                for want, prefix, endpoint, template, param in _PREFIXED:
                    if method == want and path.startswith(prefix) and len(path) > len(prefix):
                        scope["path_params"] = {param: path[len(prefix) :]}
                        found = (endpoint, template)
                        break
            if found is not None:
                await _served(found[0], found[1], scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _served(
    endpoint: Endpoint, template: str, scope: Scope, receive: Receive, send: Send
) -> None:
    start = time.perf_counter()
    status = [500]

    async def tracked(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        await send(message)

    try:
        await endpoint(scope, receive, tracked)
    finally:
        http_metrics.HTTP_REQUESTS.labels(scope["method"], template, str(status[0])).inc()
        http_metrics.HTTP_LATENCY.labels(template).observe(time.perf_counter() - start)


# -- OpenAPI ----------------------------------------------------------------------------------

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
_OBJECT = {"type": "object", "additionalProperties": True}
_MODEL_LIST = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
    },
}
_MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": d, "content": {"application/json": {"schema": ref}}}
        for c, d in (
            (400, "invalid request or blocked content"), (401, "not authenticated"),
            (403, "model not allowed"), (404, "unknown model or session"),
            (408, "request body too slow"), (413, "request body too large"),
            (429, "limit reached"), (502, "upstream failed"), (503, "not available"),
            (504, "upstream timed out"),
        )
        if c in codes
    }


_SESSION_DELETED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": {"type": "string"}, "object": {"const": "session"},
                   "deleted": {"type": "boolean"}},
}


def openapi_paths() -> tuple[dict[str, Any], dict[str, Any]]:
    """(paths, component schemas) describing the inference routes."""
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA, "Model": _MODEL, "ModelList": _MODEL_LIST}
    names = {"chat": "ChatRequest", "completions": "CompletionRequest",
             "embeddings": "EmbeddingRequest", "predict": "PredictRequest"}
    for route, adapter in ROUTE_ADAPTERS.items():
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[names[route]] = schema
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    all_errors = _errors(400, 401, 403, 404, 408, 413, 429, 502, 503, 504)
    cid = {CORRELATION_HEADER: {"schema": {"type": "string"}, "description": "correlation id"}}

    def post(
        name: str, summary: str, stream: bool, params: list[Any] | None = None
    ) -> dict[str, Any]:
        content: dict[str, Any] = {"application/json": {"schema": _OBJECT}}
        if stream:
            content["text/event-stream"] = {"schema": {"type": "string"}}
        op: dict[str, Any] = {
            "tags": ["inference"],
            "summary": summary,
            "operationId": f"inference_{name.lower()}",
            "security": security,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            },
            "responses": {"200": {"description": "OK", "headers": cid, "content": content},
                          **all_errors},
        }
        if params:
            op["parameters"] = params
        return {"post": op}

    model_param = [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths = {
        "/v1/chat/completions": post("ChatRequest", "Chat completion (stream: true for SSE)", True),
        "/v1/completions": post("CompletionRequest", "Text completion", True),
        "/v1/embeddings": post("EmbeddingRequest", "Embeddings", False),
        "/v1/predict/{model}": post("PredictRequest", "Prediction of a classic ML model", False,
                                    model_param),
        "/v1/models": {"get": {
            "tags": ["inference"], "summary": "Models the caller may use",
            "operationId": "inference_list_models", "security": security,
            "responses": {"200": {"description": "OK", "headers": cid, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ModelList"}}}},
                **_errors(401, 503)},
        }},
        "/v1/models/{model}": {"get": {
            "tags": ["inference"], "summary": "One model, if the caller may use it",
            "operationId": "inference_get_model", "security": security,
            "parameters": model_param,
            "responses": {"200": {"description": "OK", "headers": cid, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Model"}}}},
                **_errors(401, 403, 404, 503)},
        }},
        "/v1/sessions/{session}": {"delete": {
            "tags": ["inference"],
            "summary": "End a conversation now: its history and pseudonym mapping are deleted",
            "operationId": "inference_delete_session", "security": security,
            "parameters": [{"name": "session", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Deleted", "headers": cid, "content": {
                "application/json": {"schema": _SESSION_DELETED}}},
                **_errors(401, 404, 503)},
        }},
    }
    return paths, schemas

