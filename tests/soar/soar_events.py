"""Events as the gateway and the other surfaces emit them, for detection tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tsuba.core.events import SecurityEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ev(seconds: float = 0, **fields: Any) -> SecurityEvent:
    """An event ``seconds`` after T0, built like a JSON line (loose fields become attributes)."""
    data: dict[str, Any] = {"class": "api_activity", **fields}
    data["time"] = (T0 + timedelta(seconds=seconds)).isoformat()
    return SecurityEvent.from_dict(data)


def auth(
    seconds: float, ok: bool, ip: str, cred: str | None = "tsk_a", **extra: Any
) -> SecurityEvent:
    return ev(seconds, **{"class": "authentication", "activity": "logon",
                          "outcome": "success" if ok else "failure", "src_ip": ip,
                          "credential_id": cred, **extra})


def finding(seconds: float, guard: str, stage: str, actor: str = "bob") -> SecurityEvent:
    return ev(seconds, **{"class": "detection_finding", "activity": "create", "actor": actor,
                          "outcome": "failure", "stage": stage,
                          "finding": {"guard": guard, "verdict": "block", "reason": "x"}})
