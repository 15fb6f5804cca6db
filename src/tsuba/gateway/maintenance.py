"""Chores a running gateway does on its own: purging expired sessions, pseudonym mappings
and I/O log records.

Each worker runs them; the deletes are idempotent, so several workers only share the work.
The I/O log purge records itself in the audit log every time it runs, so a gap in those
records shows that retention was not enforced for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tsuba.core.errors import TsubaError
from tsuba.gateway.pipeline import Gateway

log = logging.getLogger("tsuba.gateway")

FIRST_RUN_SECONDS = 5.0


async def run(gateway: Gateway) -> None:
    """Run the purges on their intervals until cancelled."""
    gw = gateway.settings.gateway
    uses_sessions = any(r.sessions for r in gw.routes.values())
    uses_io_log = any(r.io_log for r in gw.routes.values())
    # Pseudonyms kept in the database outlive their session by a margin, then go here
    # (Redis expires its keys by itself).
    pseudonyms = gateway.pseudonyms
    purge_pseudonyms = getattr(pseudonyms.store, "purge_expired", None) if pseudonyms else None
    if not (uses_sessions or uses_io_log or purge_pseudonyms is not None):
        return
    next_sessions = next_io = time.monotonic() + FIRST_RUN_SECONDS
    while True:
        now = time.monotonic()
        if now >= next_sessions and (uses_sessions or purge_pseudonyms is not None):
            if uses_sessions:
                await _purge("sessions", gateway.sessions.purge)
            if purge_pseudonyms is not None:
                await _purge("pseudonym mappings", purge_pseudonyms)
            next_sessions = now + gw.sessions.purge_interval_seconds
        if uses_io_log and now >= next_io:
            await _purge("I/O log", gateway.io_log.purge)
            next_io = now + gw.io_log.purge_interval_seconds
        wake = min(
            next_sessions if uses_sessions or purge_pseudonyms else float("inf"),
            next_io if uses_io_log else float("inf"),
        )
        await asyncio.sleep(max(0.1, wake - time.monotonic()))


async def _purge(what: str, purge: Callable[[], object]) -> None:
    try:
        await asyncio.to_thread(purge)
    except TsubaError as exc:
        log.error("purge of expired %s failed: %s", what, exc.message)
