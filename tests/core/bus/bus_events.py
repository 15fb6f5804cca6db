"""Event builders shared by the bus tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

from typing import Any

from tsuba.core.events import SecurityEvent


def ev(
    i: int = 0, cls: str = "api_activity", severity: str = "info", **extra: Any
) -> SecurityEvent:
    return SecurityEvent(
        event_class=cls, severity=severity, message=f"event {i}", attributes={"i": i, **extra}
    )
