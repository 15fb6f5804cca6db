"""Upstream model servers: an allow-list, one keep-alive connection pool each, error mapping.

Every URL the gateway calls is the configured ``base_url`` of an upstream plus a fixed path
chosen by the route; request fields only pick a *configured* model, so no request can
steer the gateway to another host (SSRF), and redirects are never followed.  Upstream
failures become OpenAI-style errors that name the upstream but never echo its internals.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tsuba.core.config import GatewaySettings, Settings, UpstreamSettings
from tsuba.core.errors import ConfigError, InputError, UpstreamError
from tsuba.core.keys import KeyManager
from tsuba.core.keys.envelope import DEFAULT_KEK, decrypt, encrypt
from tsuba.core.keys.files import atomic_write

RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_BACKOFF_SECONDS = 0.05
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
    headers: httpx.Headers
    seconds: float


class Upstream:
    """One configured upstream and its connection pool (HTTP/1.1 keep-alive)."""

    def __init__(self, name: str, cfg: UpstreamSettings, credential: str | None) -> None:
        self.name = name
        self.base_url = cfg.base_url.rstrip("/")
        self.retries = cfg.retries
        headers = {"content-type": "application/json", "accept": "application/json"}
        if credential:
            headers["authorization"] = f"Bearer {credential}"
        self.client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_seconds, connect=cfg.connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=cfg.max_connections,
                max_keepalive_connections=cfg.max_connections,
                keepalive_expiry=30.0,
            ),
            follow_redirects=False,
            trust_env=False,  # proxies from the environment would be another route out
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    async def post(self, path: str, body: bytes) -> UpstreamReply:
        """POST ``body``; connection failures and 502/503/504 are retried with backoff."""
        url = self.url(path)
        attempt = 0
        while True:
            start = time.perf_counter()
            try:
                resp = await self.client.post(url, content=body)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise self.timeout_error(exc) from None
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise self.transport_error(exc) from None
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                continue
            return UpstreamReply(
                resp.status_code, resp.content, resp.headers, time.perf_counter() - start
            )

    @asynccontextmanager
    async def stream(self, path: str, body: bytes) -> AsyncIterator[httpx.Response]:
        """Open a streaming POST; only failures before the response starts are retried."""
        url = self.url(path)
        attempt = 0
        while True:
            request = self.client.build_request(
                "POST", url, content=body, headers={"accept": "text/event-stream"}
            )
            try:
                resp = await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise self.timeout_error(exc) from None
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.ConnectError) and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                    continue
                raise self.transport_error(exc) from None
            if resp.status_code in RETRY_STATUSES and attempt < self.retries:
                await resp.aclose()
                attempt += 1
                await asyncio.sleep(RETRY_BACKOFF_SECONDS * attempt)
                continue
            break
        try:
            yield resp
        finally:
            await resp.aclose()

    def timeout_error(self, exc: httpx.TimeoutException) -> UpstreamError:
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for its answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "on the request")
        return UpstreamTimeout(f"upstream '{self.name}' timed out {what}", status=504)

    def transport_error(self, exc: httpx.TransportError) -> UpstreamError:
        if isinstance(exc, httpx.ConnectError):
            return UpstreamError(f"upstream '{self.name}' is unreachable (connection refused)")
        return UpstreamError(
            f"upstream '{self.name}' failed: {type(exc).__name__} (connection broken)"
        )

    async def aclose(self) -> None:
        await self.client.aclose()


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
