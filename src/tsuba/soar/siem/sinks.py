"""Delivering events to SIEMs: at least once, through the event bus.

A :class:`SiemForwarder` is a bus handler.  The bus keeps each subscriber's position in its
durable outbox and retries a handler that raises with exponential backoff, then
dead-letters the event (and says so with an alert): so a sink only has to send or raise.
A receiver may see an event twice after a crash; every form carries the event id, and the
ECS bulk form uses it as the document id, so duplicates are harmless.

Sinks: rotated NDJSON files, syslog over UDP, TCP or TLS (RFC 5425/6587 octet counting on
streams), and HTTP (OCSF JSON, Splunk HEC, Elastic bulk).

The forms that carry OCSF (``ocsf`` and ``hec``) check each event against the OCSF schema
first (``validate=True``, the default): an event that does not conform is never sent.  The
encoder raises :class:`InvalidOcsfEvent` naming every problem; by default the bus retries
and then dead-letters it like any event a sink cannot take.  Retrying cannot fix it, and
on a bus tuned to ride out long outages it would hold up every later event, so a forwarder
given ``on_invalid=dead_letter_to(bus.store, name)`` dead-letters it at once instead, with
the problems as the error and the bus's usual notice.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal, Protocol

import httpx

from tsuba.core.bus import Delivery, OutboxRecord, OutboxStore, dead_letter_notice, is_notice
from tsuba.core.errors import InputError, UpstreamError
from tsuba.core.events import SecurityEvent
from tsuba.soar.siem.formats import cef, ecs_bulk, splunk_hec, syslog_5424
from tsuba.soar.siem.ocsf_schema import InvalidOcsfEvent, check

Encoder = Callable[[SecurityEvent], bytes]
InvalidHandler = Callable[[Delivery, InvalidOcsfEvent], None]
_MAX_ERROR = 2000  # what the bus keeps of an error


class Sink(Protocol):
    def send(self, payload: bytes) -> None: ...

    def close(self) -> None: ...


def ocsf_line(event: SecurityEvent, *, validate: bool = True) -> bytes:
    """One OCSF JSON line; with ``validate``, only if the event conforms to the schema."""
    data = event.to_ocsf()
    if validate:
        check(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "replace") + b"\n"


def hec_line(event: SecurityEvent, *, validate: bool = True, host: str | None = None,
             index: str | None = None) -> bytes:
    """One Splunk HEC payload carrying the OCSF event, checked like :func:`ocsf_line`."""
    payload = splunk_hec(event, host=host, index=index)
    if validate:
        check(payload["event"])
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def cef_line(event: SecurityEvent) -> bytes:
    return cef(event).encode("utf-8", "replace") + b"\n"


class RotatingFileSink:
    """Appends lines to ``path``; past ``max_bytes`` it rotates (``path.1`` .. ``path.N``)."""

    def __init__(self, path: Path, *, max_bytes: int = 100 * 2**20, backups: int = 5) -> None:
        if max_bytes < 1 or backups < 0:
            raise InputError("file sink: max_bytes >= 1 and backups >= 0")
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, payload: bytes) -> None:
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(payload) > self.max_bytes:
                self._rotate()
            with self.path.open("ab") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())  # durable before the bus moves past the event

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        return None


class SyslogSink:
    """Syslog to ``host:port`` over UDP (one datagram a message), TCP or TLS (octet counting)."""

    def __init__(
        self, host: str, port: int, *, transport: Literal["udp", "tcp", "tls"] = "tcp",
        timeout: float = 5.0, tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.transport, self.timeout = host, port, transport, timeout
        self._tls = tls_context or (ssl.create_default_context() if transport == "tls" else None)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        if self.transport == "udp":
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                 socket.SOCK_DGRAM)
            sock.settimeout(self.timeout)
            return sock
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self._tls is not None:
            return self._tls.wrap_socket(raw, server_hostname=self.host)
        return raw

    def send(self, payload: bytes) -> None:
        message = payload.rstrip(b"\n")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = self._connect()
                if self.transport == "udp":
                    self._sock.sendto(message, (self.host, self.port))
                else:
                    self._sock.sendall(str(len(message)).encode() + b" " + message)
            except OSError as exc:
                self._drop()
                raise UpstreamError(f"syslog {self.transport}://{self.host}:{self.port}: "
                                    f"{exc}") from exc

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class HttpSink:
    """POSTs each payload to ``url`` (OCSF JSON, Splunk HEC, Elastic ``_bulk``)."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None,
                 content_type: str = "application/json", timeout: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise InputError(f"HTTP sink needs an http(s) URL, not {url!r}")
        self.url = url
        self._client = httpx.Client(timeout=timeout,
                                    headers={"content-type": content_type, **(headers or {})})

    def send(self, payload: bytes) -> None:
        try:
            response = self._client.post(self.url, content=payload)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"SIEM endpoint {self.url}: {exc}") from exc
        if response.status_code >= 300:
            raise UpstreamError(f"SIEM endpoint {self.url} answered HTTP "
                                f"{response.status_code}")

    def close(self) -> None:
        self._client.close()


ENCODERS: dict[str, Encoder] = {
    "ocsf": ocsf_line,
    "cef": cef_line,
    "syslog": lambda e: syslog_5424(e) + b"\n",
    "syslog-cef": lambda e: syslog_5424(e.model_copy(update={"message": cef(e)})) + b"\n",
    "hec": hec_line,
    "ecs-bulk": lambda e: ecs_bulk([e], "tsuba-events"),
}


# The forms whose payload is OCSF, and so can be checked against its schema.
_OCSF_FORMS: dict[str, Callable[..., bytes]] = {"ocsf": ocsf_line, "hec": hec_line}


def dead_letter_to(store: OutboxStore, subscriber: str) -> InvalidHandler:
    """An ``on_invalid`` for :class:`SiemForwarder`: the event goes to ``subscriber``'s
    dead letters at once, its problems as the error, with the bus's notice about it."""

    def record(delivery: Delivery, exc: InvalidOcsfEvent) -> None:
        event = delivery.event
        error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        row = OutboxRecord(
            position=delivery.position, event_id=event.id,
            event_class=event.event_class.value, severity=int(event.severity),
            event_time=event.time, published_at=datetime.now(UTC), payload=delivery.payload,
        )
        notice = None if is_notice(event) else dead_letter_notice(
            subscriber, delivery.position, event, error, delivery.attempt)
        store.dead_letter(subscriber, row, error=error, attempts=delivery.attempt,
                          notice=notice)

    return record


class SiemForwarder:
    """A bus handler sending each event, encoded, to one sink; a failure raises for a retry.

    ``validate=False`` sends OCSF forms unchecked: for a receiver that takes extensions
    or an older schema, never to let malformed events through.  ``on_invalid`` takes an
    event that fails the check instead of raising (see :func:`dead_letter_to`).
    """

    def __init__(self, sink: Sink, encode: Encoder | str = "ocsf", *,
                 validate: bool = True, on_invalid: InvalidHandler | None = None) -> None:
        if isinstance(encode, str):
            if encode not in ENCODERS:
                raise InputError(f"unknown SIEM form {encode!r} (one of "
                                 f"{', '.join(ENCODERS)})")
            encode = (partial(_OCSF_FORMS[encode], validate=validate)
                      if encode in _OCSF_FORMS else ENCODERS[encode])
        self.sink, self.encode, self.on_invalid = sink, encode, on_invalid
        self.sent = 0
        self.invalid = 0

    def __call__(self, delivery: Delivery) -> None:
        try:
            payload = self.encode(delivery.event)
        except InvalidOcsfEvent as exc:
            if self.on_invalid is None:
                raise
            self.on_invalid(delivery, exc)
            self.invalid += 1
            return
        self.sink.send(payload)
        self.sent += 1
