"""The detection engine: rules applied to events one at a time, with no I/O.

State (sliding windows, sequence progress, seen values) is kept per rule and group in
memory and bounded, so the engine can run over a replayed file or subscribe to the bus.
Time is the events' own time, so a replay raises the alerts the live stream would have.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity, new_event_id
from tsuba.soar.rules.fields import Getter, getter
from tsuba.soar.rules.spec import Rule

MAX_EVENT_IDS = 50


@dataclass(frozen=True)
class Alert:
    """One rule firing: what, for whom, on which events, and which threats it stands for."""

    rule_id: str
    title: str
    severity: Severity
    time: datetime
    first_seen: datetime
    group: dict[str, Any]
    count: int
    event_ids: tuple[str, ...]
    message: str
    owasp_llm: tuple[str, ...] = ()
    mitre_atlas: tuple[str, ...] = ()
    mitre_attack: tuple[str, ...] = ()
    actor: str | None = None
    src_ip: str | None = None
    resource: str | None = None
    id: str = field(default_factory=new_event_id)

    @property
    def dedup_key(self) -> str:
        """Alerts with one key are the same detection repeating, and fold together."""
        return f"{self.rule_id}|{json.dumps(self.group, sort_keys=True, default=str)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity.name.lower(),
            "time": _iso(self.time),
            "first_seen": _iso(self.first_seen),
            "group": self.group,
            "count": self.count,
            "event_ids": list(self.event_ids),
            "message": self.message,
            "owasp_llm": list(self.owasp_llm),
            "mitre_atlas": list(self.mitre_atlas),
            "mitre_attack": list(self.mitre_attack),
            "actor": self.actor,
            "src_ip": self.src_ip,
            "resource": self.resource,
            "dedup_key": self.dedup_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        return cls(
            id=data["id"],
            rule_id=data["rule_id"],
            title=data["title"],
            severity=Severity.parse(data["severity"]),
            time=datetime.fromisoformat(data["time"]),
            first_seen=datetime.fromisoformat(data["first_seen"]),
            group=dict(data.get("group") or {}),
            count=int(data["count"]),
            event_ids=tuple(data.get("event_ids") or ()),
            message=data.get("message", ""),
            owasp_llm=tuple(data.get("owasp_llm") or ()),
            mitre_atlas=tuple(data.get("mitre_atlas") or ()),
            mitre_attack=tuple(data.get("mitre_attack") or ()),
            actor=data.get("actor"),
            src_ip=data.get("src_ip"),
            resource=data.get("resource"),
        )

    def to_event(self) -> SecurityEvent:
        """The alert as a Detection Finding, for the audit log, the bus and SIEM export."""
        return SecurityEvent(
            event_class=EventClass.DETECTION_FINDING,
            activity="create",
            severity=self.severity,
            actor=self.actor,
            resource=self.resource,
            outcome=Outcome.FAILURE,
            message=self.message,
            src_ip=self.src_ip,
            time=self.time,
            attributes={"alert": self.to_dict()},
        )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """Enum members as their plain values, so alerts compare and serialise simply."""
    return value.value if isinstance(value, StrEnum) else value


@dataclass
class _Hit:
    ts: float
    seq: int
    event_id: str
    time: datetime
    value: Any = None


class _Groups:
    """Per-group state with a bound: the group touched least recently goes first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], factory: Callable[[], Any]) -> Any:
        state = self.data.pop(key, None)
        if state is None:
            state = factory()
            if len(self.data) >= self.limit:
                del self.data[next(iter(self.data))]
        self.data[key] = state
        return state

    def drop(self, key: tuple[Any, ...]) -> None:
        self.data.pop(key, None)


class _Runner:
    """One rule's compiled evaluation and state."""

    def __init__(self, rule: Rule, max_groups: int) -> None:
        self.rule = rule
        spec = rule.spec
        self.group_fields = list(spec.group_by)
        self.group_getters: list[Getter] = [getter(f) for f in spec.group_by]
        self.groups = _Groups(max_groups)
        self.last_alert: dict[tuple[Any, ...], float] = {}
        window = spec.threshold.window if spec.threshold else spec.window
        self.window = window.total_seconds() if window else 0.0
        suppress = spec.suppress if spec.suppress is not None else window
        self.suppress = suppress.total_seconds() if suppress else 0.0
        self.distinct = (
            getter(spec.threshold.distinct)
            if spec.threshold is not None and spec.threshold.distinct
            else None
        )
        self.new_fields = [getter(f) for f in spec.new_value.fields] if spec.new_value else []
        self.suppressed = 0
        self.kind = spec.kind
        self.allow_none = spec.kind == "match"

    def key(self, event: SecurityEvent) -> tuple[Any, ...] | None:
        values = []
        for get in self.group_getters:
            value = get(event)
            if value is None and not self.allow_none:
                return None  # an event that cannot be grouped cannot be correlated
            if isinstance(value, dict | list):
                return None
            values.append(value)
        return tuple(values)

    def feed(self, event: SecurityEvent, seq: int, ts: float) -> Alert | None:
        kind = self.kind
        if kind == "sequence":
            key = self.key(event)
            if key is None:
                return None
            fired = self._sequence(event, key, ts, seq)
        else:
            assert self.rule.match is not None
            if not self.rule.match(event):
                return None
            key = self.key(event)
            if key is None:
                return None
            if kind == "match":
                fired = (1, [event.id], event.time)
            elif kind == "threshold":
                fired = self._threshold(event, key, ts, seq)
            else:
                fired = self._new_value(event, key)
        if fired is None:
            return None
        last = self.last_alert.get(key)
        if last is not None and self.suppress and 0 <= ts - last < self.suppress:
            self.suppressed += 1
            return None
        if len(self.last_alert) >= self.groups.limit:
            del self.last_alert[next(iter(self.last_alert))]
        self.last_alert[key] = ts
        count, ids, first = fired
        return self._alert(event, key, count, ids, first)

    def _threshold(
        self, event: SecurityEvent, key: tuple[Any, ...], ts: float, seq: int
    ) -> tuple[int, list[str], datetime] | None:
        spec = self.rule.spec.threshold
        assert spec is not None
        hits: deque[_Hit] = self.groups.get(key, deque)
        value = self.distinct(event) if self.distinct else None
        if self.distinct is not None and (value is None or isinstance(value, dict | list)):
            return None
        hits.append(_Hit(ts, seq, event.id, event.time, value))
        horizon = ts - self.window
        while hits and hits[0].ts < horizon:
            hits.popleft()
        if self.distinct is not None:
            # Keep one hit per value (the newest) so memory follows the distinct count.
            if len(hits) > spec.count * 4:
                newest: dict[Any, _Hit] = {}
                for h in hits:
                    newest[h.value] = h
                kept = sorted(newest.values(), key=lambda h: h.seq)
                hits.clear()
                hits.extend(kept)
            reached = len({h.value for h in hits}) >= spec.count
        else:
            while len(hits) > spec.count:
                hits.popleft()
            reached = len(hits) >= spec.count
        if not reached:
            return None
        self.groups.drop(key)
        return len(hits), [h.event_id for h in hits], hits[0].time

    def _sequence(
        self, event: SecurityEvent, key: tuple[Any, ...], ts: float, seq: int
    ) -> tuple[int, list[str], datetime] | None:
        steps = self.rule.steps
        matched = [i for i, (pred, _) in enumerate(steps) if pred(event)]
        if not matched:
            return None
        state: list[deque[_Hit]] = self.groups.get(
            key, lambda: [deque(maxlen=n * 2 + 16) for _, n in steps]
        )
        horizon = ts - self.window
        for i in matched:
            state[i].append(_Hit(ts, seq, event.id, event.time))
        for hits in state:
            while hits and hits[0].ts < horizon:
                hits.popleft()
        if len(steps) - 1 not in matched:
            return None
        bound = seq + 1
        chosen: list[_Hit] = []
        for i in range(len(steps) - 1, -1, -1):
            need = steps[i][1]
            candidates = [h for h in state[i] if h.seq < bound]
            if len(candidates) < need:
                return None
            picked = candidates[-need:]
            chosen = picked + chosen
            bound = picked[0].seq
        self.groups.drop(key)
        return len(chosen), [h.event_id for h in chosen], chosen[0].time

    def _new_value(
        self, event: SecurityEvent, key: tuple[Any, ...]
    ) -> tuple[int, list[str], datetime] | None:
        spec = self.rule.spec.new_value
        assert spec is not None
        value = tuple(g(event) for g in self.new_fields)
        if any(v is None or isinstance(v, dict | list) for v in value):
            return None
        state: dict[str, Any] = self.groups.get(key, lambda: {"seen": {}, "n": 0})
        seen: dict[tuple[Any, ...], None] = state["seen"]
        history = state["n"]
        state["n"] = history + 1
        if value in seen:
            seen[value] = seen.pop(value)  # most recently used last
            return None
        if len(seen) >= spec.max_values:
            del seen[next(iter(seen))]
        seen[value] = None
        if history < spec.min_history:
            return None
        return 1, [event.id], event.time

    def _alert(
        self,
        event: SecurityEvent,
        key: tuple[Any, ...],
        count: int,
        ids: list[str],
        first: datetime,
    ) -> Alert:
        spec = self.rule.spec
        group = {f: _plain(v) for f, v in zip(self.group_fields, key, strict=True)}
        if spec.new_value is not None:
            group_new = {f: g(event) for f, g in zip(spec.new_value.fields, self.new_fields,
                                                     strict=True)}
            detail = ", ".join(f"{k}={v}" for k, v in group_new.items())
            message = f"{spec.title}: new {detail}"
        else:
            message = f"{spec.title}: {count} event(s)"
        if group:
            message += " for " + ", ".join(f"{k}={v}" for k, v in group.items())
        return Alert(
            rule_id=spec.id,
            title=spec.title,
            severity=spec.severity,
            time=event.time,
            first_seen=first,
            group=group,
            count=count,
            event_ids=tuple(ids[-MAX_EVENT_IDS:]),
            message=message,
            owasp_llm=tuple(spec.owasp_llm),
            mitre_atlas=tuple(spec.mitre_atlas),
            mitre_attack=tuple(spec.mitre_attack),
            actor=event.actor,
            src_ip=event.src_ip,
            resource=event.resource,
        )


class DetectionEngine:
    """Feed events in, get alerts out; usable as a bus handler through :meth:`process`."""

    def __init__(self, rules: Iterable[Rule], *, max_groups: int = 100_000) -> None:
        self.rules = [r for r in rules if r.spec.enabled]
        runners = [_Runner(r, max_groups) for r in self.rules]
        self._any = [r for r in runners if r.rule.classes is None]
        self._by_class: dict[str, list[_Runner]] = {}
        for cls in EventClass:
            self._by_class[cls.value] = [
                r for r in runners if r.rule.classes is None or cls.value in r.rule.classes
            ]
        self._runners = runners
        self._seq = 0
        self.events_seen = 0
        self.alerts_raised = 0

    @property
    def suppressed(self) -> int:
        return sum(r.suppressed for r in self._runners)

    def process(self, event: SecurityEvent) -> list[Alert]:
        self._seq += 1
        self.events_seen += 1
        alerts: list[Alert] = []
        ts = event.time.timestamp()
        for runner in self._by_class.get(event.event_class, self._any):
            alert = runner.feed(event, self._seq, ts)
            if alert is not None:
                alerts.append(alert)
        self.alerts_raised += len(alerts)
        return alerts

    def run(self, events: Iterable[SecurityEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self.process(event))
        return alerts
