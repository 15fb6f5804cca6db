"""Fixtures for the event bus: buses that are always stopped, and event builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tsuba.core.bus import Bus


@pytest.fixture
def make_bus(engine: Engine) -> Iterator[Callable[..., Bus]]:
    """Build buses on the migrated ``engine`` with fast polling; all are stopped afterwards."""
    made: list[Bus] = []

    def build(**kwargs: Any) -> Bus:
        kwargs.setdefault("poll_interval", 0.05)
        kwargs.setdefault("backoff_initial", 0.001)
        kwargs.setdefault("backoff_max", 0.01)
        bus = Bus(engine, **kwargs)
        made.append(bus)
        return bus

    yield build
    for bus in made:
        bus.stop(timeout=5)
