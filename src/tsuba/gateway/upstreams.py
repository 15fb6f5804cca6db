"""Upstream model servers: an allow-list, one keep-alive connection pool each, error mapping.

Every URL the gateway calls is the configured ``base_url`` of an upstream plus a fixed path
chosen by the route; request fields only pick a *configured* model, so no request can
steer the gateway to another host (SSRF), and redirects are never followed.  Upstream
failures become OpenAI-style errors that name the upstream but never echo its internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from tsuba.core.config import GatewaySettings, Settings, UpstreamSettings
from tsuba.core.errors import ConfigError, InputError, UpstreamError
from tsuba.core.keys import KeyManager
from tsuba.core.keys.envelope import DEFAULT_KEK, decrypt, encrypt
from tsuba.core.keys.files import atomic_write

RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_BACKOFF_SECONDS = 0.05
KEEPALIVE_SECONDS = 4.0
MAX_ANSWER_BYTES = 64 << 20
_CREDENTIAL_AAD = b"tsuba/upstream-credential/"
_MAX_ERROR_MESSAGE = 500


class UpstreamRejected(UpstreamError):
    """The upstream refused the request as the client sent it (a 4xx the client can fix)."""

    code = "upstream_rejected"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"


def _host_port(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"upstream URL {url!r} must use http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"upstream URL {url!r} must not carry credentials: use credential_env or "
            "credential_file"
        )
    if not parts.hostname:
        raise ConfigError(f"upstream URL {url!r} has no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"upstream URL {url!r} must not have a query or fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"upstream URL {url!r} has a bad port: {exc}") from None
    return parts.scheme, parts.hostname.lower(), port


def host_allowed(url: str, allowed: list[str]) -> bool:
    """Whether ``url``'s host (and port) is on the allow-list ("host" or "host:port")."""
    _scheme, host, port = _host_port(url)
    for raw in allowed:
        entry = raw.strip().lower()
        if entry.startswith("[") and "]" in entry:  # [v6]:port or [v6]
            h, _, rest = entry[1:].partition("]")
            if h == host and (not rest or rest == f":{port}"):
                return True
            continue
        if entry.count(":") == 1:
            h, _, p = entry.partition(":")
            if h == host and p == str(port):
                return True
        elif entry == host:
            return True
    return False


def check_config(gw: GatewaySettings) -> None:
    """Refuse, at start-up, any upstream off the allow-list and any model without upstream."""
    for name, up in gw.upstreams.items():
        if not host_allowed(up.base_url, gw.allowed_upstream_hosts):
            _s, host, port = _host_port(up.base_url)
            raise ConfigError(
                f"upstream '{name}' ({host}:{port}) is not in gateway.allowed_upstream_hosts: "
                f"add \"{host}:{port}\" there if the gateway may call it"
            )
        if up.credential_env is not None and up.credential_file is not None:
            raise ConfigError(
                f"upstream '{name}': set credential_env or credential_file, not both"
            )
    for model, cfg in gw.models.items():
        if cfg.upstream not in gw.upstreams:
            raise ConfigError(
                f"model '{model}' names upstream '{cfg.upstream}', which is not configured "
                "under gateway.upstreams"
            )


# -- credentials ---------------------------------------------------------------------------


def store_credential(settings: Settings, keys: KeyManager, upstream: str, secret: str) -> Path:
    """Encrypt an upstream's API key under the KEK "data" into a file in the data directory.

    Returns the path; set ``credential_file`` of the upstream to it.  The envelope's
    associated data names the upstream, so a file copied to another upstream fails to open.
    """
    if not secret:
        raise InputError("the upstream credential is empty")
    path = settings.path(f"credentials/{upstream}.tse")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    blob = encrypt(keys, DEFAULT_KEK, secret.encode(), _CREDENTIAL_AAD + upstream.encode())
    atomic_write(path, blob)
    return path


def load_credential(
    settings: Settings, keys: KeyManager | None, name: str, up: UpstreamSettings
) -> str | None:
    if up.credential_env is not None:
        value = os.environ.get(up.credential_env)
        if not value:
            raise ConfigError(
                f"upstream '{name}': environment variable {up.credential_env} is unset or empty"
            )
        return value
    if up.credential_file is not None:
        if keys is None:
            raise ConfigError(f"upstream '{name}': credential_file needs the key store")
        path = settings.path(up.credential_file)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"upstream '{name}': cannot read {path}: {exc.strerror}") from None
        return decrypt(keys, blob, _CREDENTIAL_AAD + name.encode()).decode()
    return None


# -- calling -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    body: bytes
    headers: Mapping[str, str]
    seconds: float


class UpstreamStream:
    """A streamed answer: status and headers at once, then the body as it arrives."""

    def __init__(self, upstream: Upstream, resp: aiohttp.ClientResponse) -> None:
        self._upstream = upstream
        self._resp = resp
        self.status_code = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; UpstreamError if the upstream breaks off or stalls."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._upstream.failure(exc, streaming=True) from None

    async def read(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (for error answers)."""
        parts: list[bytes] = []
        size = 0
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async for chunk in self._resp.content.iter_any():
                parts.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
        return b"".join(parts)[:limit]


class Upstream:
    """One configured upstream and its keep-alive connection pool (aiohttp).

    aiohttp rather than httpx: under concurrency httpx's pool costs about ten times more
    per request (``bench/gateway.py`` measured 1.3 ms against 0.09 ms at 100 in flight),
    which would dominate what the gateway adds.
    """

    def __init__(self, name: str, cfg: UpstreamSettings, credential: str | None) -> None:
        self.name = name
        self.base_url = cfg.base_url.rstrip("/")
        self.retries = cfg.retries
        self._cfg = cfg
        self._headers = {"content-type": "application/json", "user-agent": "tsuba-gateway"}
        if credential:
            self._headers["authorization"] = f"Bearer {credential}"
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=cfg.connect_timeout_seconds,
            sock_connect=cfg.connect_timeout_seconds,
            sock_read=cfg.timeout_seconds,
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the worker's running event loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._cfg.max_connections,
                limit_per_host=0,
                # Below the 5 s keep-alive of common servers (uvicorn, vLLM), so a
                # connection is dropped here before the server drops it under us.
                keepalive_timeout=KEEPALIVE_SECONDS,
                ttl_dns_cache=10,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                trust_env=False,  # proxies from the environment would be another route out
                auto_decompress=True,
            )
        return self._session

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _open(self, path: str, body: bytes, accept: str) -> aiohttp.ClientResponse:
        """Send the request; refused connections and 502/503/504 are retried with backoff."""
        url = self.url(path)
        attempt = 0
        while True:
            try:
                resp = await self._client().post(
                    url, data=body, headers={"accept": accept}, allow_redirects=False
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if _retryable(exc) and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise self.failure(exc) from None
            if resp.status in RETRY_STATUSES and attempt < self.retries:
                resp.release()
                attempt += 1
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                continue
            return resp

    async def post(self, path: str, body: bytes) -> UpstreamReply:
        """POST ``body`` and read the whole answer."""
        start = time.perf_counter()
        resp = await self._open(path, body, "application/json")
        try:
            if (resp.content_length or 0) > MAX_ANSWER_BYTES:
                raise UpstreamError(f"upstream '{self.name}' answered with too large a body")
            data = await resp.content.read(MAX_ANSWER_BYTES + 1)
            if len(data) > MAX_ANSWER_BYTES:
                raise UpstreamError(f"upstream '{self.name}' answered with too large a body")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self.failure(exc) from None
        finally:
            resp.release()
        return UpstreamReply(resp.status, data, resp.headers, time.perf_counter() - start)

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[UpstreamStream]:
        """Open a streaming POST; only failures before the answer starts are retried."""
        resp = await self._open(path, body, "text/event-stream")
        try:
            yield UpstreamStream(self, resp)
        finally:
            resp.close()  # a stream cut short must not go back to the pool

    def failure(self, exc: BaseException, *, streaming: bool = False) -> UpstreamError:
        """The OpenAI-style error for a failure talking to this upstream."""
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout(f"upstream '{self.name}' timed out connecting", status=504)
        if isinstance(exc, TimeoutError):  # includes aiohttp's read timeouts
            return UpstreamTimeout(
                f"upstream '{self.name}' timed out waiting for its answer", status=504
            )
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return UpstreamError(f"upstream '{self.name}' is unreachable (its name does not "
                                 "resolve)")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamError(f"upstream '{self.name}' is unreachable (connection refused)")
        if streaming:
            return UpstreamError(
                f"upstream '{self.name}' broke off the stream before it ended"
            )
        return UpstreamError(
            f"upstream '{self.name}' failed: {type(exc).__name__} (connection broken)"
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retryable(exc: BaseException) -> bool:
    """Failures where the upstream cannot have taken the request."""
    return isinstance(
        exc,
        aiohttp.ClientConnectorError
        | aiohttp.ConnectionTimeoutError
        | aiohttp.ServerDisconnectedError,
    )


def upstream_error(
    name: str, status: int, body: bytes, headers: Mapping[str, str]
) -> UpstreamError:
    """An OpenAI-style error for a non-2xx upstream answer.

    The client's own mistakes (400, 404, 413, 422) are passed on with the upstream's message;
    the upstream refusing the gateway's credential, or failing, is a 502 of the gateway.
    """
    message = _error_message(body)
    if status == 429:
        retry = headers.get("retry-after", "")
        exc = UpstreamError(
            f"upstream '{name}' is rate limiting the gateway"
            + (f" (retry after {retry} s)" if retry.isdigit() else ""),
            status=503,
        )
        return exc
    if status in (401, 403):
        return UpstreamError(
            f"upstream '{name}' refused the gateway's credential (HTTP {status}): check "
            "the upstream's credential_env or credential_file"
        )
    if status in (400, 404, 409, 413, 422):
        detail = f": {message}" if message else ""
        return UpstreamRejected(f"upstream '{name}' rejected the request{detail}", status=status)
    if status == 504:
        return UpstreamTimeout(f"upstream '{name}' timed out (HTTP 504)", status=504)
    return UpstreamError(f"upstream '{name}' failed with HTTP {status}")


def _error_message(body: bytes) -> str:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    err = data.get("error") if isinstance(data, dict) else None
    msg = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
    if not isinstance(msg, str):
        return ""
    clean = "".join(ch for ch in msg if ch.isprintable())
    return clean[:_MAX_ERROR_MESSAGE]


class UpstreamPool:
    """All upstreams of one worker process, built once from settings."""

    def __init__(self, settings: Settings, keys: KeyManager | None) -> None:
        check_config(settings.gateway)
        self._by_name: dict[str, Upstream] = {
            name: Upstream(name, cfg, load_credential(settings, keys, name, cfg))
            for name, cfg in settings.gateway.upstreams.items()
        }

    def get(self, name: str) -> Upstream:
        return self._by_name[name]

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    async def aclose(self) -> None:
        for up in self._by_name.values():
            await up.aclose()
