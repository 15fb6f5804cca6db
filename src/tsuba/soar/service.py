"""The response loop: what ``tsuba up`` (in its parent process) or ``tsuba soar serve`` runs.

While it holds the database's lease (:mod:`tsuba.soar.lease`) it keeps these durable bus
subscribers, each resuming from its own cursor:

- ``soar.detect``: every event through the detection rules; each alert is recorded as a
  Detection Finding and filed as an incident.
- ``soar.playbooks``: Incident Findings (an incident opened, an alert joined one, its
  severity rose) run the playbooks whose trigger matches, whoever filed the alert (this
  loop, ``tsuba soar ingest``, the HTTP ingest endpoint).
- ``soar.siem.<name>``: one per configured sink, every event forwarded at least once.

It also escalates incidents past their response time on a timer and reports its health in
the lease row, which ``tsuba soar status`` and /metrics read from any process.

Everything configurable is loaded when the service is built, so a bad rule file, playbook
or sink stops ``tsuba up`` before it serves instead of failing later, quietly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from tsuba.core.bus import Bus, Delivery, SqlOutbox
from tsuba.core.config import SiemSinkSettings, SoarSettings
from tsuba.core.errors import ConfigError, ConflictError, InputError, NotFoundError, TsubaError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.core.platform import Platform
from tsuba.soar.incidents import IncidentPolicy, IncidentService, Priority
from tsuba.soar.lease import LOOP, Lease, LeaseInfo, read_lease
from tsuba.soar.metrics import register_metrics
from tsuba.soar.playbooks import Action, PlaybookRunner, PlaybookSpec, load_playbook
from tsuba.soar.rules import Alert, DetectionEngine, Rule, builtin_rules, load_rules
from tsuba.soar.rules.views import authentication_view
from tsuba.soar.siem.formats import ecs, ecs_bulk
from tsuba.soar.siem.sinks import (
    ENCODERS,
    Encoder,
    HttpSink,
    RotatingFileSink,
    SiemForwarder,
    Sink,
    SyslogSink,
    dead_letter_to,
    hec_line,
)

log = logging.getLogger("tsuba.soar")

DETECT = "soar.detect"
PLAYBOOKS = "soar.playbooks"
# Incident Findings that carry the alert which changed the incident: playbooks react to these.
_TRIGGERING = frozenset({"open", "correlate", "escalate_severity"})
_PLAYBOOK_SUFFIXES = (".yaml", ".yml", ".json")


# -- configuration into parts ----------------------------------------------------------------

def incident_policy(settings: SoarSettings) -> IncidentPolicy:
    """The default response times with the configured overrides."""
    base = IncidentPolicy()
    respond = dict(base.respond_within)
    for prio, seconds in settings.respond_within_seconds.items():
        respond[Priority(prio)] = timedelta(seconds=seconds)
    return IncidentPolicy(
        respond_within=respond,
        dedup_window=timedelta(seconds=settings.dedup_window_seconds),
        correlate_window=timedelta(seconds=settings.correlate_window_seconds),
    )


def load_rule_pack(settings: SoarSettings, home: Path) -> list[Rule]:
    rules = builtin_rules() if settings.builtin_rules else []
    for name in settings.rules:
        path = Path(name) if Path(name).is_absolute() else home / name
        try:
            rules.extend(load_rules(path))
        except InputError as exc:
            raise ConfigError(f"config error: soar.rules: {exc.message}") from None
    ids = [r.spec.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"config error: soar.rules: rule id {dup[0]!r} is defined twice "
                          "(disable the built-in pack with soar.builtin_rules = false to "
                          "replace its rules)")
    if not rules:
        raise ConfigError("config error: soar: no detection rules (built-in pack disabled and "
                          "soar.rules empty)")
    return rules


def load_playbooks(directory: Path) -> list[PlaybookSpec]:
    """Every playbook in ``directory`` (none if it does not exist), ids unique."""
    if not directory.is_dir():
        return []
    found: dict[str, PlaybookSpec] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in _PLAYBOOK_SUFFIXES or not path.is_file():
            continue
        try:
            spec = load_playbook(path)
        except InputError as exc:
            raise ConfigError(f"config error: soar.playbooks_dir: {exc.message}") from None
        if spec.id in found:
            raise ConfigError(f"config error: soar.playbooks_dir: playbook id {spec.id!r} "
                              f"appears twice in {directory}")
        found[spec.id] = spec
    return list(found.values())


def _host_port(target: str, where: str) -> tuple[str, int]:
    parts = urlsplit("//" + target)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"config error: {where}.target: {target!r} must be host:port")
    return parts.hostname, port


def _json_line(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "replace") + b"\n"


def build_sink(cfg: SiemSinkSettings, home: Path) -> tuple[Sink, Encoder]:
    """The sink and encoder one ``soar.sinks`` entry stands for."""
    where = f"soar.sinks[{cfg.subscriber.removeprefix('soar.siem.')}]"
    token = cfg.token.get_secret_value() if cfg.token is not None else None
    if cfg.kind in ("cef_syslog", "syslog"):
        host, port = _host_port(cfg.target, where)
        context = None
        if cfg.transport == "tls":
            context = ssl.create_default_context(cafile=cfg.tls_ca_file)
        sink: Sink = SyslogSink(host, port, transport=cfg.transport,
                                timeout=cfg.timeout_seconds, tls_context=context)
        return sink, ENCODERS["syslog-cef" if cfg.kind == "cef_syslog" else "syslog"]
    if cfg.kind in ("ecs_file", "ndjson_file"):
        path = Path(cfg.target)
        path = path if path.is_absolute() else home / path
        sink = RotatingFileSink(path, max_bytes=cfg.max_bytes, backups=cfg.backups)
        if cfg.kind == "ecs_file" or cfg.format == "ecs":
            return sink, lambda e: _json_line(ecs(e))
        return sink, ENCODERS[cfg.format]
    if not cfg.target.startswith(("https://", "http://")):
        raise ConfigError(f"config error: {where}.target: {cfg.target!r} must be an "
                          "http(s) URL")
    if cfg.tls_ca_file is not None:
        raise ConfigError(f"config error: {where}.tls_ca_file applies to TLS syslog only: "
                          "HTTP sinks trust the system's CAs")
    headers: dict[str, str] = {}
    index = cfg.index
    if cfg.kind == "splunk_hec":
        if token is None:
            raise ConfigError(f"config error: {where}.token: splunk_hec needs its HEC token")
        headers["authorization"] = f"Splunk {token}"
        return (HttpSink(cfg.target, headers=headers, timeout=cfg.timeout_seconds),
                partial(hec_line, index=index))
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if cfg.kind == "ecs_http":
        return (HttpSink(cfg.target, headers=headers, content_type="application/x-ndjson",
                         timeout=cfg.timeout_seconds),
                lambda e: ecs_bulk([e], index))
    return HttpSink(cfg.target, headers=headers, timeout=cfg.timeout_seconds), ENCODERS["ocsf"]


# -- health ----------------------------------------------------------------------------------

def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Health:
    """What each part of the loop did last and what went wrong, for the lease row."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, dict[str, Any]] = {}

    def ok(self, part: str, **counters: int) -> None:
        with self._lock:
            entry = self._parts.setdefault(part, {"handled": 0, "errors": 0})
            entry["handled"] += 1
            for name, n in counters.items():
                entry[name] = entry.get(name, 0) + n

    def error(self, part: str, message: str) -> None:
        with self._lock:
            entry = self._parts.setdefault(part, {"handled": 0, "errors": 0})
            entry["errors"] += 1
            entry["last_error"] = message[:500]
            entry["last_error_at"] = _iso(datetime.now(UTC))

    def note(self, part: str, **values: Any) -> None:
        with self._lock:
            self._parts.setdefault(part, {"handled": 0, "errors": 0}).update(values)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._parts.items()}


class _Tracked:
    """A bus handler that reports each success and failure to :class:`Health`."""

    def __init__(self, name: str, handler: Callable[[Delivery], object], health: Health) -> None:
        self.name, self.handler, self.health = name, handler, health

    def __call__(self, delivery: Delivery) -> None:
        try:
            self.handler(delivery)
        except Exception as exc:
            text = exc.message if isinstance(exc, TsubaError) else f"{type(exc).__name__}: {exc}"
            self.health.error(self.name, f"position {delivery.position}: {text}")
            raise
        self.health.ok(self.name)


# -- the bus handlers ------------------------------------------------------------------------

def _own_alert(event: SecurityEvent) -> bool:
    """Findings that already are filed alerts (this loop's, or ingested): not detected on."""
    return event.event_class is EventClass.INCIDENT_FINDING or (
        event.event_class is EventClass.DETECTION_FINDING and "alert" in event.attributes
    )


class DetectHandler:
    """Events through the rules; each alert recorded as a Detection Finding, then filed.

    A retried delivery (the bus redelivers after a failure) is not evaluated twice: only
    the alerts still pending from it are finished, each step of each once.
    """

    def __init__(self, engine: DetectionEngine, incidents: IncidentService,
                 record: Callable[[SecurityEvent], object]) -> None:
        self.engine, self.incidents, self.record = engine, incidents, record
        self._lock = threading.Lock()
        self._position = -1
        self._pending: list[tuple[Alert, bool]] = []  # (alert, finding recorded)
        self.filed = 0

    def __call__(self, delivery: Delivery) -> None:
        with self._lock:
            if delivery.position > self._position:
                if not _own_alert(delivery.event):
                    for event in authentication_view(delivery.event):
                        self._pending.extend((a, False) for a in self.engine.process(event))
                self._position = delivery.position
            while self._pending:
                alert, recorded = self._pending[0]
                if not recorded:
                    finding = alert.to_event()
                    self.record(finding.model_copy(update={
                        "attributes": {**finding.attributes, "source": "tsuba.rules"}}))
                    self._pending[0] = (alert, True)
                self.incidents.ingest(alert)
                self._pending.pop(0)
                self.filed += 1


class _AlertRunner(PlaybookRunner):
    """Fills ``{alert.*}`` from the alert that triggered the run, not the incident's first."""

    _alert: dict[str, Any] | None = None

    def context(self, incident: Any) -> dict[str, Any]:
        context = super().context(incident)
        if self._alert is not None:
            context["alert"] = self._alert
        return context


class PlaybookHandler:
    """Incident Findings in; the playbooks whose trigger matches run, without a person.

    A playbook that cannot run (a template naming a field the alert lacks, an unknown
    action) is escalated as a high-severity event and an incident note, then skipped; a
    storage failure raises so the bus retries (the step ledger keeps re-runs idempotent).
    """

    def __init__(self, runner: _AlertRunner, playbooks: list[PlaybookSpec],
                 record: Callable[[SecurityEvent], object], health: Health) -> None:
        self.runner, self.playbooks, self.record, self.health = runner, playbooks, record, health
        self._lock = threading.Lock()
        self.runs = 0

    def __call__(self, delivery: Delivery) -> None:
        event = delivery.event
        attrs = event.attributes
        if event.event_class is not EventClass.INCIDENT_FINDING or \
                attrs.get("action") not in _TRIGGERING:
            return
        alert, summary = attrs.get("alert"), attrs.get("incident")
        if not isinstance(alert, dict) or not isinstance(summary, dict) or \
                not isinstance(summary.get("id"), int) or \
                not isinstance(alert.get("rule_id"), str):
            return
        try:
            incident = self.runner.incidents.get(summary["id"])
        except NotFoundError:
            return
        for playbook in self.playbooks:
            if playbook.matches(incident, [alert["rule_id"]]):
                self._run(playbook, incident.id, alert)

    def _run(self, playbook: PlaybookSpec, incident_id: int, alert: dict[str, Any]) -> None:
        with self._lock:
            self.runner._alert = alert
            try:
                results = self.runner.run(playbook, incident_id)
            except (InputError, ConfigError, NotFoundError) as exc:
                self._cannot_run(playbook, incident_id, exc.message)
                return
            finally:
                self.runner._alert = None
        self.runs += 1
        waiting = [r.step for r in results if r.status in ("failed", "needs_approval")]
        if waiting:
            self.health.error(PLAYBOOKS, f"playbook {playbook.id} on incident {incident_id}: "
                              f"step(s) {', '.join(waiting)} failed or wait for approval")
        self.health.note(PLAYBOOKS, last_run=f"{playbook.id} on incident {incident_id}",
                         last_run_at=_iso(datetime.now(UTC)))

    def _cannot_run(self, playbook: PlaybookSpec, incident_id: int, why: str) -> None:
        message = f"playbook {playbook.id} cannot run on incident {incident_id}: {why}"
        self.health.error(PLAYBOOKS, message)
        log.error("%s", message)
        self.record(SecurityEvent(
            event_class=EventClass.INCIDENT_FINDING, activity="update",
            severity=Severity.HIGH, actor=self.runner.actor,
            resource=f"incident/{incident_id}", outcome=Outcome.FAILURE, message=message,
            attributes={"action": "playbook_error", "playbook": playbook.id, "error": why},
        ))
        with contextlib.suppress(TsubaError):
            self.runner.incidents.add_note(incident_id, f"{message}: a person must act")


# -- the service -----------------------------------------------------------------------------

class ResponseService:
    """Runs the loop in background threads while this process holds the lease.

    ``start()`` returns at once; the loop becomes active when the lease is free (at once on
    a database with no other loop), else waits as standby.  ``stop()`` hands the lease back.
    """

    def __init__(
        self,
        platform: Platform,
        settings: SoarSettings | None = None,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        holder: str | None = None,
        poll_interval: float = 0.25,
    ) -> None:
        self.platform = platform
        self.settings = settings or platform.settings.soar
        home = platform.settings.home
        self.rules = load_rule_pack(self.settings, home)
        self.playbooks = load_playbooks(platform.settings.path(self.settings.playbooks_dir))
        for cfg in self.settings.sinks:  # refuse a bad sink now, not at the first event
            sink, _ = build_sink(cfg, home)
            sink.close()
        self.policy = incident_policy(self.settings)
        self.lease = Lease(platform.engine, ttl=self.settings.lease_seconds, holder=holder)
        self.health = Health()
        self.registry = registry
        self.poll_interval = poll_interval
        self._collectors: list[Collector] = []
        self._buses: list[Bus] = []
        self._sinks: list[Sink] = []
        self._stop = threading.Event()
        self._active = threading.Event()
        self._thread: threading.Thread | None = None
        self._since: datetime | None = None
        self._next_sla = 0.0
        self.incidents = IncidentService(platform.engine, emit=platform.record,
                                         actor=self.settings.actor, policy=self.policy)
        self.actions = self._actions()
        for playbook in self.playbooks:
            unknown = sorted({s.action for s in playbook.steps} - set(self.actions))
            if unknown:
                raise ConfigError(f"config error: soar.playbooks_dir: playbook {playbook.id!r} "
                                  f"uses unknown action(s) {', '.join(unknown)} (known: "
                                  f"{', '.join(sorted(self.actions))})")
            if self.settings.smtp is None and any(s.action == "email" for s in playbook.steps):
                raise ConfigError(f"config error: soar.smtp: playbook {playbook.id!r} sends "
                                  "e-mail: configure soar.smtp")

    @property
    def holder(self) -> str:
        return self.lease.holder

    @property
    def active(self) -> bool:
        return self._active.is_set()

    def wait_active(self, timeout: float) -> bool:
        return self._active.wait(timeout)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> ResponseService:
        if self._thread is not None:
            raise ConflictError("the response service is already started")
        if self.registry is not None:
            self._collectors = [register_metrics(self.platform.engine, self.registry, ttl=5.0),
                                register_loop_metrics(self.platform.engine, self.registry)]
        self._thread = threading.Thread(target=self._supervise, name="tsuba-soar", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.registry is not None:
            for collector in self._collectors:
                with contextlib.suppress(KeyError):
                    self.registry.unregister(collector)
            self._collectors = []

    def __enter__(self) -> ResponseService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _supervise(self) -> None:
        interval = max(0.5, self.settings.lease_seconds / 3)
        valid_until = 0.0
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    held = self.lease.acquire(self._health())
                except TsubaError as exc:
                    # Storage trouble: keep acting only while the last renewal still holds.
                    self.health.error("lease", exc.message)
                    held = self.active and time.monotonic() < valid_until
                else:
                    if held:
                        valid_until = began + self.settings.lease_seconds
                if held and not self.active:
                    self._activate()
                elif not held and self.active:
                    log.error("response loop: lease lost to another process; standing by")
                    self._deactivate()
                if self.active:
                    self._sla_tick()
                self._stop.wait(interval)
        finally:
            if self.active:
                self._deactivate()
            with contextlib.suppress(TsubaError):
                self.lease.release()

    def _activate(self) -> None:
        platform = self.platform
        self._since = datetime.now(UTC)
        # A storage outage of minutes must not dead-letter detections or playbook runs.
        bus = Bus(platform.engine, poll_interval=self.poll_interval, max_attempts=20,
                  backoff_max=30.0)
        detect = DetectHandler(DetectionEngine(self.rules), self.incidents, platform.record)
        bus.subscribe(DETECT, _Tracked(DETECT, detect, self.health), start="latest")
        runner = _AlertRunner(self.incidents, self.actions, emit=platform.record)
        handler = PlaybookHandler(runner, self.playbooks, platform.record, self.health)
        bus.subscribe(PLAYBOOKS, _Tracked(PLAYBOOKS, handler, self.health),
                      classes=[EventClass.INCIDENT_FINDING], start="latest")
        buses = [bus]
        sinks: list[Sink] = []
        if self.settings.sinks:
            # SIEM delivery has its own patience: an outage waits as lag, in order.
            siem = Bus(platform.engine, poll_interval=self.poll_interval,
                       max_attempts=self.settings.siem_max_attempts,
                       backoff_max=self.settings.siem_backoff_max_seconds)
            buses.append(siem)
            for cfg in self.settings.sinks:
                sink, encode = build_sink(cfg, platform.settings.home)
                sinks.append(sink)
                # An event that breaks the OCSF schema cannot be fixed by retrying: it is
                # set aside at once instead of holding up every later one.
                forwarder = SiemForwarder(sink, encode,
                                          on_invalid=dead_letter_to(siem.store, cfg.subscriber))
                siem.subscribe(cfg.subscriber, _Tracked(cfg.subscriber, forwarder, self.health),
                               min_severity=cfg.min_severity, start="latest")
        self._buses, self._sinks = [b.start() for b in buses], sinks
        self._next_sla = 0.0
        self._active.set()
        log.info("response loop active as %s", self.holder)

    def _deactivate(self) -> None:
        self._active.clear()
        buses, self._buses = self._buses, []
        for bus in buses:
            stuck = bus.stop()
            if stuck:
                log.error("response loop: subscriber(s) %s did not stop in time", stuck)
        for sink in self._sinks:
            with contextlib.suppress(Exception):
                sink.close()
        self._sinks = []

    def _actions(self) -> Mapping[str, Action]:
        from tsuba.soar.actions import builtin_actions, rotated_keys_dir  # noqa: PLC0415

        return builtin_actions(self.platform, self.incidents, smtp=self.settings.smtp,
                               rotated_key_dir=rotated_keys_dir(self.platform.settings))

    def _sla_tick(self) -> None:
        now = time.monotonic()
        if now < self._next_sla:
            return
        self._next_sla = now + self.settings.sla_check_seconds
        try:
            escalated = self.incidents.check_sla()
        except TsubaError as exc:
            self.health.error("sla", exc.message)
            return
        self.health.ok("sla", escalated=len(escalated))
        self.health.note("sla", last_check_at=_iso(datetime.now(UTC)))

    def _health(self) -> dict[str, Any]:
        subscribers: dict[str, dict[str, Any]] = {}
        for bus in list(self._buses):
            subscribers.update(bus.status())
        parts = self.health.snapshot()
        for name, state in subscribers.items():
            parts.setdefault(name, {"handled": 0, "errors": 0}).update(
                alive=state["alive"], crashed=state["crashed"],
                busy_seconds=state["busy_seconds"])
        return {
            "state": "active" if self.active else "standby",
            "since": _iso(self._since) if self._since else None,
            "rules": len(self.rules),
            "playbooks": [p.id for p in self.playbooks],
            "sinks": [{"name": c.subscriber, "kind": c.kind, "target": c.target}
                      for c in self.settings.sinks],
            "parts": parts,
        }


# -- reading the loop's state from any process -----------------------------------------------

def loop_status(engine: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Lease holder, per-subscriber lag and dead letters, and the holder's last errors."""
    now = now or datetime.now(UTC)
    lease: LeaseInfo | None = read_lease(engine, LOOP)
    store = SqlOutbox(engine)
    head = store.head()
    cursors = {k: v for k, v in store.cursors().items() if k.startswith("soar.")}
    dead: dict[str, int] = {}
    for letter in store.dead_letters():
        if letter.subscriber.startswith("soar."):
            dead[letter.subscriber] = dead.get(letter.subscriber, 0) + 1
    health = lease.health if lease is not None else {}
    parts: dict[str, Any] = health.get("parts", {}) if isinstance(health, dict) else {}
    subscribers = []
    for name in sorted(set(cursors) | set(dead)):
        part = parts.get(name, {}) if isinstance(parts.get(name), dict) else {}
        subscribers.append({
            "name": name,
            "position": cursors.get(name),
            "lag": head - cursors[name] if name in cursors else None,
            "dead_letters": dead.get(name, 0),
            "handled": part.get("handled"),
            "errors": part.get("errors"),
            "last_error": part.get("last_error"),
            "last_error_at": part.get("last_error_at"),
        })
    errors = {name: {"last_error": p.get("last_error"), "at": p.get("last_error_at"),
                     "errors": p.get("errors")}
              for name, p in parts.items()
              if isinstance(p, dict) and p.get("last_error")}
    active = lease is not None and lease.held(now)
    return {
        "active": active,
        "holder": lease.holder if lease is not None else None,
        "acquired_at": _iso(lease.acquired_at) if lease is not None else None,
        "renewed_at": _iso(lease.renewed_at) if lease is not None else None,
        "expires_at": _iso(lease.expires_at) if lease is not None else None,
        "state": (health.get("state") if active else "stopped") if lease is not None
        else "never started",
        "head": head,
        "subscribers": subscribers,
        "sinks": health.get("sinks", []) if isinstance(health, dict) else [],
        "playbooks": health.get("playbooks", []) if isinstance(health, dict) else [],
        "rules": health.get("rules") if isinstance(health, dict) else None,
        "errors": errors,
    }


class LoopCollector(Collector):
    """Loop health on /metrics: active, per-subscriber lag, dead letters and errors."""

    def __init__(self, engine: Any, *, ttl: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any] | None] | None = None

    def _status(self) -> dict[str, Any] | None:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                try:
                    status: dict[str, Any] | None = loop_status(self._engine)
                except TsubaError as exc:
                    log.warning("response loop status unreadable: %s", exc)
                    status = None
                self._cached = (now, status)
            return self._cached[1]

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        yield GaugeMetricFamily("tsuba_soar_loop_active",
                                "1 while a response loop holds the lease and renews it.",
                                value=1.0 if status is not None and status["active"] else 0.0)
        if status is None:
            return
        lag = GaugeMetricFamily("tsuba_soar_subscriber_lag_events",
                                "Events published but not yet handled, per loop subscriber.",
                                labels=["subscriber"])
        dead = GaugeMetricFamily("tsuba_soar_subscriber_dead_letters",
                                 "Events a loop subscriber gave up on.", labels=["subscriber"])
        errors = GaugeMetricFamily("tsuba_soar_subscriber_errors",
                                   "Handler failures since the holder started (retried).",
                                   labels=["subscriber"])
        for sub in status["subscribers"]:
            if sub["lag"] is not None:
                lag.add_metric([sub["name"]], float(sub["lag"]))
            dead.add_metric([sub["name"]], float(sub["dead_letters"]))
            if sub["errors"] is not None:
                errors.add_metric([sub["name"]], float(sub["errors"]))
        yield lag
        yield dead
        yield errors


def register_loop_metrics(engine: Any, registry: CollectorRegistry = REGISTRY) -> LoopCollector:
    collector = LoopCollector(engine)
    registry.register(collector)
    return collector
