"""Events as the gateway and the other surfaces emit them, for detection tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tsuba.core.events import SecurityEvent, Severity
from tsuba.soar.incidents import PostMortem
from tsuba.soar.rules import Alert

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


PM = PostMortem(summary="Leaked key used by a scraper", root_cause="key in a public repo",
                actions=["revoked the key", "secret scanning on the repo"])


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(minutes=5)

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def alert(
    rule: str = "r.one", severity: Severity = Severity.HIGH, minutes: float = 0,
    group: dict[str, str] | None = None, actor: str | None = None, src_ip: str | None = None,
) -> Alert:
    at = T0 + timedelta(minutes=minutes)
    return Alert(rule_id=rule, title=f"title of {rule}", severity=severity, time=at,
                 first_seen=at - timedelta(seconds=30), group=group or {"src_ip": "192.0.2.1"},
                 count=3, event_ids=("e1",), message=f"{rule} fired", actor=actor,
                 src_ip=src_ip, owasp_llm=("LLM10",), mitre_atlas=("AML.T0012",))
