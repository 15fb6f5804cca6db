"""Server-sent events through the gateway, with output guards that see text first.

Without output guards the upstream's events are passed on byte for byte as they arrive.
With them, each choice's text is buffered and released in small guarded windows: once at
least ``window_chars`` new characters have arrived the chain inspects them (with enough of
the text before to catch a match across the boundary) and releases everything except the
last ``max_match - 1`` characters, which a match still arriving could extend.  Text a guard
blocks therefore never reaches the client, not even a prefix of it, while the first token
waits only for one window.  Released text is re-framed as chunks shaped like the upstream's.
With pseudonymization, :class:`StreamRestoration` then puts the real values back into what
the guards released, so the guards judge the model's own text (see ``content_guards``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from tsuba.gateway.guards import ContentBlocked, Finding, GuardChain, Verdict, redact
from tsuba.guards.anonymize import StreamRestorer

DONE = b"[DONE]"


class SseSplitter:
    """Splits a byte stream into complete events; tolerates CRLF and events split anywhere."""

    __slots__ = ("_buf", "max_event")

    def __init__(self, max_event: int = 8 << 20) -> None:
        self._buf = b""
        self.max_event = max_event

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()
        if len(self._buf) > self.max_event:
            raise ValueError(f"an upstream event is larger than {self.max_event} bytes")
        return [p for p in parts if p]

    def rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The payload of the ``data:`` lines of one event (None for comments and other fields)."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].lstrip(b" ")
    lines = [
        line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
    ]
    return b"\n".join(lines) if lines else None


def frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


@dataclass(slots=True)
class _Choice:
    text: str = ""
    checked: int = 0  # text[:checked] has been inspected
    released: int = 0  # text[:released] has gone to the client
    redactions: list[Finding] = field(default_factory=list)


_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


class GuardedStream:
    """Feeds parsed upstream chunks through ``chain``; returns the chunks to send."""

    def __init__(self, chain: GuardChain, window_chars: int) -> None:
        self.chain = chain
        self.window = max(1, window_chars)
        self.hold = max(0, chain.max_match - 1)
        self.findings: list[Finding] = []
        self._choices: dict[int, _Choice] = {}
        self._template: dict[str, Any] = {"object": "chat.completion.chunk"}
        self.text_key = "content"  # "text" for /v1/completions streams

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one upstream chunk; ContentBlocked as soon as a guard blocks."""
        for key in _TEMPLATE_KEYS:
            if key in chunk:
                self._template[key] = chunk[key]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [*self._flush_all(), chunk]
        out: list[dict[str, Any]] = []
        passthrough: list[dict[str, Any]] = []
        for c in choices:
            if not isinstance(c, dict):
                continue
            index = c.get("index", 0)
            state = self._choices.setdefault(index, _Choice())
            text, rest = self._split(c)
            if text:
                state.text += text
            if rest is not None:
                # Anything else (finish_reason, tool calls) goes after all text before it.
                out.extend(self._release(index, state, final=True))
                passthrough.append(rest)
            elif len(state.text) - state.checked >= self.window:
                out.extend(self._release(index, state, final=False))
        if passthrough:
            out.append({**self._template, **_without(chunk, "choices"), "choices": passthrough})
        return out

    def finish(self) -> list[dict[str, Any]]:
        """Inspect and release what is still held (the upstream ended its stream)."""
        return self._flush_all()

    # -- internals -----------------------------------------------------------------------
    def _split(self, c: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """The choice's text, and what else it carries (None if nothing)."""
        if self.text_key == "text":
            text = c.get("text") or ""
            rest = {k: v for k, v in c.items() if k not in ("text", "index", "logprobs")}
            has_rest = rest.get("finish_reason") is not None
            if not has_rest:
                return text, None
            return text, {**c, "text": ""}
        delta = c.get("delta") or {}
        text = delta.get("content") or ""
        other = {k: v for k, v in delta.items() if k != "content" and v is not None}
        if not other and c.get("finish_reason") is None:
            return text, None
        new_delta = dict(other)
        if "content" in delta and "role" in other:
            new_delta["content"] = ""
        return text, {**c, "delta": new_delta}

    def _flush_all(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for index, state in self._choices.items():
            out.extend(self._release(index, state, final=True))
        return out

    def _release(self, index: int, state: _Choice, *, final: bool) -> list[dict[str, Any]]:
        text = state.text
        if len(text) > state.checked:
            begin = max(0, state.checked - self.hold)
            found = [
                Finding(f.guard, f.verdict, f.reason, f.start + begin, f.end + begin,
                        f.replacement)
                for f in self.chain.findings(text[begin:])
            ]
            fresh = [f for f in found if f.end > state.checked or f.end == f.start]
            if fresh:
                self.findings.extend(fresh)
                if any(f.verdict is Verdict.BLOCK for f in fresh):
                    raise ContentBlocked("output", fresh)
                state.redactions.extend(f for f in fresh if f.verdict is Verdict.REDACT)
            state.checked = len(text)
        upto = len(text) if final else len(text) - self.hold
        for r in state.redactions:  # never cut a redacted span in two
            if r.start < upto < r.end:
                upto = r.end
        if upto <= state.released:
            return []
        piece = text[state.released : upto]
        spans = [r for r in state.redactions if r.end > state.released and r.start < upto]
        if spans:
            piece = redact(piece, spans, start=state.released)
            state.redactions = [r for r in state.redactions if r.end > upto]
        state.released = upto
        return [self._chunk(index, piece)]

    def _chunk(self, index: int, text: str) -> dict[str, Any]:
        if self.text_key == "text":
            choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": None,
                                      "logprobs": None}
        else:
            choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
        return {**self._template, "choices": [choice]}


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


class StreamRestoration:
    """Puts pseudonymized values back into a stream's chunks, after the output guards.

    Each choice's text, and each tool call's arguments, get their own
    :class:`~tsuba.guards.anonymize.StreamRestorer`, so a placeholder cut across chunks is
    restored whole and only a possible placeholder prefix is ever held back.  Held text is
    released with the choice's ``finish_reason`` or, at the latest, by :meth:`finish`.
    Arguments are JSON text: values go into them JSON-escaped.
    """

    def __init__(self, mapping: Mapping[str, str], route: str) -> None:
        self.mapping = dict(mapping)
        self.text_key = "text" if route == "completions" else "content"
        self._text: dict[int, StreamRestorer] = {}
        self._args: dict[tuple[int, int], StreamRestorer] = {}
        self._template: dict[str, Any] = {"object": "chat.completion.chunk"}

    @property
    def unknown(self) -> list[str]:
        """Placeholder-shaped tokens without a value (expired, or made up by the model)."""
        return [t for r in (*self._text.values(), *self._args.values()) for t in r.unknown]

    def feed(self, chunk: dict[str, Any]) -> dict[str, Any]:
        for key in _TEMPLATE_KEYS:
            if key in chunk:
                self._template[key] = chunk[key]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return chunk
        out = []
        for c in choices:
            out.append(self._choice(c) if isinstance(c, dict) else c)
        return {**chunk, "choices": out}

    def finish(self) -> list[dict[str, Any]]:
        """Chunks with whatever is still held (the stream ended without a finish_reason)."""
        out: list[dict[str, Any]] = []
        for index, restorer in self._text.items():
            rest = restorer.flush()
            if rest:
                out.append(self._text_chunk(index, rest))
        for (index, call), restorer in self._args.items():
            rest = restorer.flush()
            if rest:
                delta = {"tool_calls": [{"index": call, "function": {"arguments": rest}}]}
                out.append({**self._template,
                            "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        return out

    def _restorer(self, index: int) -> StreamRestorer:
        found = self._text.get(index)
        if found is None:
            found = self._text[index] = StreamRestorer(self.mapping)
        return found

    def _choice(self, c: dict[str, Any]) -> dict[str, Any]:
        index = c.get("index", 0)
        index = index if isinstance(index, int) else 0
        done = c.get("finish_reason") is not None
        c = dict(c)
        if self.text_key == "text":
            text = c.get("text")
            if isinstance(text, str) or done:
                c["text"] = self._release(index, text if isinstance(text, str) else "", done)
            return c
        delta = c.get("delta")
        if not isinstance(delta, dict):
            if done and index in self._text:
                rest = self._text[index].flush()
                if rest:
                    c["delta"] = {"content": rest}
            return c
        delta = dict(delta)
        text = delta.get("content")
        if isinstance(text, str) or (done and index in self._text):
            delta["content"] = self._release(index, text if isinstance(text, str) else "", done)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            delta["tool_calls"] = [self._call(index, call, done) for call in calls]
        if done:
            delta = self._flush_calls(index, delta)
        c["delta"] = delta
        return c

    def _release(self, index: int, text: str, done: bool) -> str:
        restorer = self._restorer(index)
        out = restorer.feed(text)
        return out + restorer.flush() if done else out

    def _call(self, index: int, call: Any, done: bool) -> Any:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            return call
        fn = call["function"]
        args = fn.get("arguments")
        if not isinstance(args, str):
            return call
        number = call.get("index", 0)
        key = (index, number if isinstance(number, int) else 0)
        restorer = self._args.get(key)
        if restorer is None:
            restorer = self._args[key] = StreamRestorer(self.mapping, escape=json_escape)
        return {**call, "function": {**fn, "arguments": restorer.feed(args)}}

    def _flush_calls(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        tails = []
        for (choice, number), restorer in self._args.items():
            if choice == index:
                rest = restorer.flush()
                if rest:
                    tails.append({"index": number, "function": {"arguments": rest}})
        if tails:
            delta["tool_calls"] = [*(delta.get("tool_calls") or []), *tails]
        return delta

    def _text_chunk(self, index: int, text: str) -> dict[str, Any]:
        if self.text_key == "text":
            choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": None,
                                      "logprobs": None}
        else:
            choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
        return {**self._template, "choices": [choice]}


def json_escape(value: str) -> str:
    """``value`` as the inside of a JSON string."""
    return orjson.dumps(value).decode()[1:-1]
