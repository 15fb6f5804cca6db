"""Alerts become incidents: deduplicated, correlated, prioritised, timed and closed with care.

- An alert repeating an open alert (same rule, same group, within ``dedup_window``) folds
  into it: one row, a higher hit count.
- An alert about an entity (principal, address, key) that an active incident already
  concerns, within ``correlate_window``, joins that incident; otherwise it opens one.
- Severity is P0 (critical) to P3 (low); an incident takes its worst alert's.
- Each priority has a time to respond (P0 1 h, P1 4 h, ...); :meth:`IncidentService.check_sla`
  escalates every open incident past it, once.
- P0 and P1 close only with a post-mortem; an incident whose alerts are all false positives
  closes itself as such.

Every change is committed first and then reported through ``emit`` as an Incident Finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.errors import ConflictError, InputError, NotFoundError, TsubaError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.storage import reader
from tsuba.core.storage.engine import storage_error
from tsuba.soar.models import AlertRow, EntityRow, HistoryRow, IncidentRow
from tsuba.soar.rules import Alert

Emit = Callable[[SecurityEvent], object]


class Priority(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @classmethod
    def of(cls, severity: Severity) -> Priority:
        if severity >= Severity.CRITICAL:
            return cls.P0
        if severity >= Severity.HIGH:
            return cls.P1
        if severity >= Severity.MEDIUM:
            return cls.P2
        return cls.P3

    @property
    def event_severity(self) -> Severity:
        return {"P0": Severity.CRITICAL, "P1": Severity.HIGH, "P2": Severity.MEDIUM,
                "P3": Severity.LOW}[self.value]

    @classmethod
    def parse(cls, text: str) -> Priority:
        try:
            return cls(text.strip().upper())
        except ValueError:
            raise InputError(f"unknown severity {text!r}: use P0, P1, P2 or P3") from None


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE = (State.OPEN, State.ACKNOWLEDGED, State.CONTAINED)

# Which state may follow which.  Going back is only reopening a resolved incident.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.ACKNOWLEDGED, State.CONTAINED, State.RESOLVED}),
    State.ACKNOWLEDGED: frozenset({State.CONTAINED, State.RESOLVED}),
    State.CONTAINED: frozenset({State.RESOLVED}),
    State.RESOLVED: frozenset({State.CLOSED, State.OPEN}),
    State.CLOSED: frozenset(),
}

_VERB = {
    State.ACKNOWLEDGED: "acknowledge",
    State.CONTAINED: "contain",
    State.RESOLVED: "resolve",
    State.CLOSED: "close",
    State.OPEN: "reopen",
}


def _default_sla() -> dict[Priority, timedelta]:
    return {
        Priority.P0: timedelta(hours=1),
        Priority.P1: timedelta(hours=4),
        Priority.P2: timedelta(hours=24),
        Priority.P3: timedelta(hours=72),
    }


@dataclass(frozen=True)
class IncidentPolicy:
    """Response times per priority, and how near alerts must be to fold or correlate."""

    respond_within: dict[Priority, timedelta] = field(default_factory=_default_sla)
    dedup_window: timedelta = timedelta(hours=1)
    correlate_window: timedelta = timedelta(hours=1)
    postmortem_required: frozenset[Priority] = frozenset({Priority.P0, Priority.P1})

    def __post_init__(self) -> None:
        missing = [p.value for p in Priority if p not in self.respond_within]
        if missing:
            raise InputError(f"SLA policy has no response time for {', '.join(missing)}")
        for prio, limit in self.respond_within.items():
            if limit <= timedelta(0):
                raise InputError(f"SLA response time for {prio.value} must be positive")


class PostMortem(BaseModel):
    """What happened, why, and what changes so it does not happen again."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    summary: str = Field(min_length=10, max_length=20_000)
    root_cause: str = Field(min_length=3, max_length=20_000)
    actions: list[str] = Field(min_length=1, max_length=200)
    lessons: str = Field(default="", max_length=20_000)

    @classmethod
    def parse(cls, data: Any) -> PostMortem:
        try:
            pm = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "post-mortem"
            raise InputError(
                f"post-mortem {loc}: {err['msg']} (needs summary, root_cause and a list of "
                "actions)"
            ) from None
        if not all(a.strip() for a in pm.actions):
            raise InputError("post-mortem actions: an action must not be empty")
        return pm


@dataclass(frozen=True)
class AlertRecord:
    id: str
    incident_id: int
    rule_id: str
    severity: Priority
    title: str
    message: str
    first_seen: datetime
    last_seen: datetime
    hits: int
    occurrences: int
    false_positive: bool
    fp_reason: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident_id": self.incident_id,
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "hits": self.hits,
            "occurrences": self.occurrences,
            "false_positive": self.false_positive,
            "fp_reason": self.fp_reason,
            "owasp_llm": self.data.get("owasp_llm", []),
            "mitre_atlas": self.data.get("mitre_atlas", []),
        }


@dataclass(frozen=True)
class Incident:
    id: int
    title: str
    severity: Priority
    state: State
    resolution: str | None
    first_event_at: datetime
    detected_at: datetime
    opened_at: datetime
    respond_due_at: datetime
    acknowledged_at: datetime | None
    contained_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla_breached: bool
    escalated_at: datetime | None
    alert_count: int
    updated_at: datetime
    updated_by: str
    postmortem: dict[str, Any] | None
    entities: tuple[str, ...] = ()
    alerts: tuple[AlertRecord, ...] = ()
    history: tuple[dict[str, Any], ...] = ()

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "state": self.state.value,
            "resolution": self.resolution,
            "alert_count": self.alert_count,
            "first_event_at": _iso(self.first_event_at),
            "detected_at": _iso(self.detected_at),
            "opened_at": _iso(self.opened_at),
            "respond_due_at": _iso(self.respond_due_at),
            "acknowledged_at": _iso(self.acknowledged_at),
            "contained_at": _iso(self.contained_at),
            "resolved_at": _iso(self.resolved_at),
            "closed_at": _iso(self.closed_at),
            "sla_breached": self.sla_breached,
            "escalated_at": _iso(self.escalated_at),
            "updated_at": _iso(self.updated_at),
            "updated_by": self.updated_by,
        }
        if full:
            data["entities"] = list(self.entities)
            data["postmortem"] = self.postmortem
            data["alerts"] = [a.to_dict() for a in self.alerts]
            data["history"] = list(self.history)
        return data


@dataclass(frozen=True)
class Ingested:
    """Where an alert went: a new incident, an existing one, or folded into an alert."""

    incident: Incident
    alert_id: str
    opened: bool
    deduplicated: bool


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entities(alert: Alert) -> list[str]:
    found: dict[str, None] = {}
    for key, value in alert.group.items():
        if value is not None:
            found[f"{key.removeprefix('attributes.')}:{value}"[:300]] = None
    if alert.actor:
        found[f"actor:{alert.actor}"[:300]] = None
    if alert.src_ip:
        found[f"src_ip:{alert.src_ip}"[:300]] = None
    return list(found)


def _alert_record(row: AlertRow) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        incident_id=row.incident_id,
        rule_id=row.rule_id,
        severity=Priority(row.severity),
        title=row.title,
        message=row.message,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        hits=row.hits,
        occurrences=row.occurrences,
        false_positive=row.false_positive,
        fp_reason=row.fp_reason,
        data=dict(row.data),
    )


def _incident(row: IncidentRow, s: Session | None = None) -> Incident:
    extra: dict[str, Any] = {}
    if s is not None:
        extra["entities"] = tuple(
            s.scalars(
                select(EntityRow.entity).where(EntityRow.incident_id == row.id)
                .order_by(EntityRow.id)
            )
        )
        extra["alerts"] = tuple(
            _alert_record(a)
            for a in s.scalars(
                select(AlertRow).where(AlertRow.incident_id == row.id)
                .order_by(AlertRow.received_at, AlertRow.id)
            )
        )
        extra["history"] = tuple(
            {
                "at": _iso(h.at),
                "actor": h.actor,
                "action": h.action,
                "from": h.from_state,
                "to": h.to_state,
                "note": h.note,
            }
            for h in s.scalars(
                select(HistoryRow).where(HistoryRow.incident_id == row.id)
                .order_by(HistoryRow.id)
            )
        )
    return Incident(
        id=row.id,
        title=row.title,
        severity=Priority(row.severity),
        state=State(row.state),
        resolution=row.resolution,
        first_event_at=row.first_event_at,
        detected_at=row.detected_at,
        opened_at=row.opened_at,
        respond_due_at=row.respond_due_at,
        acknowledged_at=row.acknowledged_at,
        contained_at=row.contained_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        sla_breached=row.sla_breached,
        escalated_at=row.escalated_at,
        alert_count=row.alert_count,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        postmortem=row.postmortem,
        **extra,
    )


class IncidentService:
    """The incident store and its rules; ``emit`` receives an event for every change."""

    def __init__(
        self,
        engine: Engine,
        *,
        emit: Emit | None = None,
        actor: str = "tsuba.soar",
        policy: IncidentPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self._emit = emit
        self.actor = actor
        self.policy = policy or IncidentPolicy()
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- alerts in ---------------------------------------------------------------------
    def ingest(self, alert: Alert) -> Ingested:
        """File an alert: fold it into a repeat, join a related incident, or open one."""
        now = self._clock()
        prio = Priority.of(alert.severity)
        entities = _entities(alert)
        with self._write() as s:
            folded = self._fold(s, alert, prio, now)
            if folded is not None:
                row, alert_id, raised = folded
                result = Ingested(_incident(row), alert_id, opened=False, deduplicated=True)
                action = "escalate_severity" if raised else None
            else:
                row = self._related(s, alert, entities) or self._open(s, alert, prio, now)
                opened = row.id is None
                if opened:
                    s.add(row)
                    s.flush()
                raised = self._raise(row, prio) if not opened else False
                row.alert_count = (row.alert_count or 0) + (0 if opened else 1)
                row.last_alert_at = max(row.last_alert_at, alert.time)
                row.first_event_at = min(row.first_event_at, alert.first_seen)
                row.updated_at, row.updated_by = now, self.actor
                s.add(self._alert_row(alert, row.id, prio, now))
                known = set(
                    s.scalars(select(EntityRow.entity).where(EntityRow.incident_id == row.id))
                )
                for entity in entities:
                    if entity not in known:
                        s.add(EntityRow(incident_id=row.id, entity=entity))
                action = "open" if opened else "correlate"
                note = alert.message if opened else f"alert {alert.id}: {alert.message}"
                s.add(self._history(row.id, now, action, (None if opened else row.state, row.state),
                                    note))
                s.flush()
                result = Ingested(_incident(row), alert.id, opened=opened, deduplicated=False)
        if action is not None:
            self._publish(result.incident, action, f"incident {row.id} {action}: {alert.title}",
                          {"alert": alert.to_dict()})
        return result

    def _fold(
        self, s: Session, alert: Alert, prio: Priority, now: datetime
    ) -> tuple[IncidentRow, str, bool] | None:
        since = alert.time - self.policy.dedup_window
        found = s.execute(
            select(AlertRow, IncidentRow)
            .join(IncidentRow, IncidentRow.id == AlertRow.incident_id)
            .where(
                AlertRow.dedup_key == alert.dedup_key[:512],
                AlertRow.false_positive.is_(False),
                AlertRow.last_seen >= since,
                IncidentRow.state.in_([st.value for st in ACTIVE]),
            )
            .order_by(AlertRow.last_seen.desc())
            .limit(1)
            .with_for_update()
        ).first()
        if found is None:
            return None
        row, incident = found
        row.last_seen = max(row.last_seen, alert.time)
        row.hits += alert.count
        row.occurrences += 1
        raised = self._raise(incident, prio)
        if _rank(prio) < _rank(Priority(row.severity)):
            row.severity = prio.value
        incident.last_alert_at = max(incident.last_alert_at, alert.time)
        incident.updated_at, incident.updated_by = now, self.actor
        if raised:
            s.add(self._history(incident.id, now, "escalate_severity",
                                (incident.state, incident.state),
                                f"severity {incident.severity} from {alert.id}"))
        return incident, row.id, raised

    def _related(self, s: Session, alert: Alert, entities: list[str]) -> IncidentRow | None:
        if not entities:
            return None
        since = alert.time - self.policy.correlate_window
        return s.scalars(
            select(IncidentRow)
            .join(EntityRow, EntityRow.incident_id == IncidentRow.id)
            .where(
                EntityRow.entity.in_(entities),
                IncidentRow.state.in_([st.value for st in ACTIVE]),
                IncidentRow.last_alert_at >= since,
            )
            .order_by(IncidentRow.last_alert_at.desc(), IncidentRow.id.desc())
            .limit(1)
            .with_for_update()
        ).first()

    def _open(self, s: Session, alert: Alert, prio: Priority, now: datetime) -> IncidentRow:
        return IncidentRow(
            title=alert.title[:256],
            severity=prio.value,
            state=State.OPEN.value,
            first_event_at=alert.first_seen,
            detected_at=alert.time,
            last_alert_at=alert.time,
            opened_at=now,
            respond_due_at=now + self.policy.respond_within[prio],
            sla_breached=False,
            alert_count=1,
            updated_at=now,
            updated_by=self.actor,
        )

    def _raise(self, row: IncidentRow, prio: Priority) -> bool:
        """Take a worse priority, and its shorter response time while nobody has responded."""
        if _rank(prio) >= _rank(Priority(row.severity)):
            return False
        row.severity = prio.value
        if row.acknowledged_at is None:
            row.respond_due_at = min(
                row.respond_due_at, row.opened_at + self.policy.respond_within[prio]
            )
        return True

    @staticmethod
    def _alert_row(alert: Alert, incident_id: int, prio: Priority, now: datetime) -> AlertRow:
        return AlertRow(
            id=alert.id,
            incident_id=incident_id,
            rule_id=alert.rule_id[:128],
            dedup_key=alert.dedup_key[:512],
            severity=prio.value,
            title=alert.title[:256],
            message=alert.message,
            first_seen=alert.first_seen,
            last_seen=alert.time,
            received_at=now,
            hits=alert.count,
            occurrences=1,
            data=alert.to_dict(),
            false_positive=False,
        )

    def _history(
        self, incident_id: int, now: datetime, action: str, change: tuple[str | None, str],
        note: str,
    ) -> HistoryRow:
        before, after = change
        return HistoryRow(incident_id=incident_id, at=now, actor=self.actor[:128],
                          action=action, from_state=before, to_state=after, note=note)

    # -- people act --------------------------------------------------------------------
    def acknowledge(self, incident_id: int, note: str = "") -> Incident:
        return self.transition(incident_id, State.ACKNOWLEDGED, note)

    def contain(self, incident_id: int, note: str = "") -> Incident:
        return self.transition(incident_id, State.CONTAINED, note)

    def resolve(self, incident_id: int, note: str = "") -> Incident:
        return self.transition(incident_id, State.RESOLVED, note)

    def reopen(self, incident_id: int, note: str = "") -> Incident:
        return self.transition(incident_id, State.OPEN, note)

    def close(
        self, incident_id: int, postmortem: PostMortem | None = None, note: str = ""
    ) -> Incident:
        return self.transition(incident_id, State.CLOSED, note, postmortem=postmortem)

    def transition(
        self,
        incident_id: int,
        to: State,
        note: str = "",
        *,
        postmortem: PostMortem | None = None,
    ) -> Incident:
        """Move an incident along its life cycle, refusing a step the cycle does not allow."""
        now = self._clock()
        with self._write() as s:
            row = self._locked(s, incident_id)
            before = State(row.state)
            if to not in TRANSITIONS[before]:
                allowed = ", ".join(sorted(_VERB[t] for t in TRANSITIONS[before])) or "nothing"
                raise ConflictError(
                    f"incident {incident_id} is {before.value}: it cannot {_VERB[to]} "
                    f"(allowed: {allowed})"
                )
            prio = Priority(row.severity)
            if to is State.CLOSED:
                if postmortem is None and prio in self.policy.postmortem_required:
                    raise InputError(
                        f"incident {incident_id} is {prio.value}: closing it needs a "
                        "post-mortem (summary, root_cause, actions)"
                    )
                if postmortem is not None:
                    row.postmortem = {**postmortem.model_dump(), "by": self.actor,
                                      "at": _iso(now)}
                row.closed_at = now
                row.resolution = row.resolution or "fixed"
            elif to is State.OPEN:
                row.resolved_at = None
                row.resolution = None
            else:
                if row.acknowledged_at is None:
                    row.acknowledged_at = now  # containing or resolving is responding
                    row.sla_breached = row.sla_breached or now > row.respond_due_at
                if to is State.CONTAINED:
                    row.contained_at = now
                if to is State.RESOLVED:
                    row.resolved_at = now
            row.state = to.value
            row.updated_at, row.updated_by = now, self.actor
            s.add(self._history(row.id, now, _VERB[to], (before.value, to.value), note))
            s.flush()
            incident = _incident(row)
        self._publish(incident, _VERB[to], f"incident {incident_id} {before.value} -> "
                      f"{to.value}" + (f": {note}" if note else ""),
                      {"from": before.value, "to": to.value, "note": note})
        return incident

    def mark_false_positive(self, alert_id: str, reason: str) -> AlertRecord:
        """Mark an alert false; an incident left with only false alerts closes as such."""
        if not reason.strip():
            raise InputError("say why the alert is a false positive (--reason)")
        now = self._clock()
        closed: Incident | None = None
        with self._write() as s:
            row = s.scalars(select(AlertRow).where(AlertRow.id == alert_id)
                            .with_for_update()).first()
            if row is None:
                raise NotFoundError(f"no alert {alert_id!r}: see 'tsuba soar show INCIDENT'")
            if row.false_positive:
                raise ConflictError(f"alert {alert_id} is already marked false positive")
            row.false_positive, row.fp_reason = True, reason.strip()
            row.fp_by, row.fp_at = self.actor[:128], now
            incident = self._locked(s, row.incident_id)
            s.add(self._history(incident.id, now, "false_positive",
                                (incident.state, incident.state),
                                f"alert {alert_id}: {reason.strip()}"))
            s.flush()
            real = s.scalar(
                select(func.count()).select_from(AlertRow).where(
                    AlertRow.incident_id == incident.id, AlertRow.false_positive.is_(False)
                )
            )
            if not real and incident.state != State.CLOSED.value:
                before = incident.state
                incident.state, incident.resolution = State.CLOSED.value, "false_positive"
                incident.closed_at, incident.updated_at = now, now
                incident.updated_by = self.actor
                s.add(self._history(incident.id, now, "close", (before, State.CLOSED.value),
                                    "every alert was a false positive"))
                s.flush()
                closed = _incident(incident)
            record = _alert_record(row)
            current = _incident(incident)
        self._publish(current, "false_positive", f"alert {alert_id} marked false positive",
                      {"alert_id": alert_id, "reason": reason.strip()})
        if closed is not None:
            self._publish(closed, "close", f"incident {closed.id} closed: false positive",
                          {"to": "closed", "resolution": "false_positive"})
        return record

    def add_note(self, incident_id: int, note: str) -> Incident:
        """A line in the incident's history (what a responder or a playbook did or saw)."""
        if not note.strip():
            raise InputError("a note must not be empty")
        now = self._clock()
        with self._write() as s:
            row = self._locked(s, incident_id)
            row.updated_at, row.updated_by = now, self.actor
            s.add(self._history(row.id, now, "note", (row.state, row.state), note.strip()))
            s.flush()
            incident = _incident(row)
        self._publish(incident, "note", f"incident {incident_id}: {note.strip()[:200]}",
                      {"note": note.strip()})
        return incident

    # -- time passes -------------------------------------------------------------------
    def check_sla(self) -> list[Incident]:
        """Escalate each open incident past its response time, once; return those escalated."""
        now = self._clock()
        with self._write() as s:
            rows = list(s.scalars(
                select(IncidentRow).where(
                    IncidentRow.state == State.OPEN.value,
                    IncidentRow.respond_due_at < now,
                    IncidentRow.escalated_at.is_(None),
                ).order_by(IncidentRow.id).with_for_update()
            ))
            for row in rows:
                row.sla_breached, row.escalated_at = True, now
                s.add(self._history(row.id, now, "escalate", (row.state, row.state),
                                    f"no response within the {row.severity} time"))
            s.flush()
            escalated = [_incident(r) for r in rows]
        for incident in escalated:
            late = now - incident.respond_due_at
            self._publish(
                incident, "escalate",
                f"incident {incident.id} ({incident.severity.value}) breached its response "
                f"time: due {_iso(incident.respond_due_at)}, {int(late.total_seconds())}s late",
                {"sla": "respond", "due": _iso(incident.respond_due_at)},
                severity=Severity.CRITICAL if incident.severity is Priority.P0 else Severity.HIGH,
            )
        return escalated

    # -- reading -----------------------------------------------------------------------
    def get(self, incident_id: int) -> Incident:
        with self._read() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None:
                raise NotFoundError(f"no incident {incident_id}: see 'tsuba soar incidents'")
            return _incident(row, s)

    def list(
        self,
        *,
        states: tuple[State, ...] | None = None,
        severity: Priority | None = None,
        limit: int = 1000,
    ) -> list[Incident]:
        query = select(IncidentRow)
        if states:
            query = query.where(IncidentRow.state.in_([st.value for st in states]))
        if severity is not None:
            query = query.where(IncidentRow.severity == severity.value)
        query = query.order_by(IncidentRow.severity, IncidentRow.id.desc()).limit(limit)
        with self._read() as s:
            return [_incident(r) for r in s.scalars(query)]

    # -- plumbing ----------------------------------------------------------------------
    @staticmethod
    def _locked(s: Session, incident_id: int) -> IncidentRow:
        row = s.scalars(
            select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"no incident {incident_id}: see 'tsuba soar incidents'")
        return row

    def _publish(
        self,
        incident: Incident,
        action: str,
        message: str,
        extra: dict[str, Any],
        *,
        severity: Severity | None = None,
    ) -> None:
        if self._emit is None:
            return
        self._emit(
            SecurityEvent(
                event_class=EventClass.INCIDENT_FINDING,
                activity={"open": "create", "close": "close"}.get(action, "update"),
                severity=severity or incident.severity.event_severity,
                actor=self.actor,
                resource=f"incident/{incident.id}",
                outcome=Outcome.SUCCESS,
                message=message,
                attributes={"action": action, "incident": incident.to_dict(), **extra},
            )
        )

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(reader(self.engine), expire_on_commit=False) as s, s.begin():
                yield s
        except sa_exc.DBAPIError as exc:
            raise storage_error(exc, "incident store") from exc

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as s, s.begin():
                yield s
        except TsubaError:
            raise
        except sa_exc.IntegrityError as exc:
            raise ConflictError(
                "the change conflicts with one made at the same time (or the alert was filed "
                "already): look again and retry"
            ) from exc
        except sa_exc.DBAPIError as exc:
            raise storage_error(exc, "incident store") from exc


def _rank(prio: Priority) -> int:
    return int(prio.value[1])
