"""HTTP protocol for ``tsuba up``: uvicorn's, plus a deadline for a request's headers.

uvicorn closes idle keep-alive connections but lets a client take as long as it likes to
send a request's headers, so a few thousand slow clients (slowloris) would hold a worker's
connections open forever.  Here every request's headers must be complete within
``gateway.validation.header_timeout_seconds`` of their first byte (or of the connection
opening); a slow body is cut by the inference routes' own body deadline.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from tsuba.core.errors import TsubaError

log = logging.getLogger("tsuba.gateway")

_HAVE_HTTPTOOLS = importlib.util.find_spec("httptools") is not None


_timeout: list[float] = []


def header_timeout() -> float:
    """The configured deadline, read once per worker (settings load in the worker)."""
    if not _timeout:
        from tsuba.core.config import load_settings  # noqa: PLC0415 - worker-side, once

        try:
            _timeout.append(load_settings().gateway.validation.header_timeout_seconds)
        except TsubaError:
            _timeout.append(10.0)
    return _timeout[0]


def set_header_timeout(seconds: float) -> None:
    _timeout[:] = [seconds]


class _HeaderDeadline:
    """Mixin: arm a timer when a request's first bytes arrive, disarm once headers are in."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _deadline: asyncio.TimerHandle | None = None

    def _between_requests(self) -> bool:
        cycle = getattr(self, "cycle", None)
        return cycle is None or bool(cycle.response_complete)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(header_timeout(), self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self._between_requests() and not self.transport.is_closing():
            log.info("closing a connection whose request headers took too long")
            self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()
        super().data_received(data)  # type: ignore[misc]
        if not self._between_requests():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class H11WithDeadline(_HeaderDeadline, H11Protocol):
    pass


PROTOCOL: type[Any] = H11WithDeadline
if _HAVE_HTTPTOOLS:  # uvicorn's faster parser, when installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsWithDeadline(_HeaderDeadline, HttpToolsProtocol):
        pass

    PROTOCOL = HttpToolsWithDeadline
