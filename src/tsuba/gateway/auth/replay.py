"""Replay caches for signed requests: each (key id, nonce) is accepted once while fresh.

``memory`` holds one process's nonces (one worker); ``redis`` holds them for every worker
and machine with one atomic ``SET NX PX`` per request.  A full memory cache refuses rather
than forgets (forgetting a nonce early would let its request be replayed), and a Redis
failure refuses too: both fail closed.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from tsuba.core.errors import ConfigError, StorageError


class ReplayCache(Protocol):
    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """True the first time ``key`` is claimed within ``ttl_seconds``; False for a replay."""
        ...

    async def aclose(self) -> None: ...


class MemoryReplayCache:
    def __init__(
        self, *, max_entries: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        now = self._clock()
        with self._lock:
            self._sweep(now)
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return False
            if len(self._expiry) >= self._max:
                raise StorageError(
                    f"replay cache is full ({self._max} nonces in the signing window): raise "
                    "gateway.auth.replay_max_entries or use the redis backend"
                )
            until = now + ttl_seconds
            self._expiry[key] = until
            heapq.heappush(self._heap, (until, key))
            return True

    def __len__(self) -> int:
        return len(self._expiry)

    async def aclose(self) -> None:
        with self._lock:
            self._expiry.clear()
            self._heap.clear()

    def _sweep(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            until, key = heapq.heappop(heap)
            if self._expiry.get(key) == until:
                del self._expiry[key]


class RedisReplayCache:
    """Nonces in Redis under ``tsuba:replay:``; one client per event loop."""

    PREFIX = "tsuba:replay:"

    def __init__(self, url: str) -> None:
        self._url = url
        # One client per event loop: a client's connections belong to the loop that made them.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        try:
            import redis.asyncio as aioredis  # noqa: PLC0415 (optional dependency)
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "the redis replay cache needs the redis package: pip install 'tsuba[redis]'"
            ) from exc
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            self._clients[loop] = client
        return client

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        from redis.exceptions import RedisError  # noqa: PLC0415

        try:
            created = await self._client().set(
                self.PREFIX + key, b"1", nx=True, px=max(1, int(ttl_seconds * 1000))
            )
        except (RedisError, OSError) as exc:
            raise StorageError(
                f"replay cache (Redis) is not usable: {exc}: signed requests are refused "
                "until it is back"
            ) from exc
        return bool(created)

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
