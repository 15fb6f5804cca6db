"""``tsuba soar``: incidents (list, show, acknowledge, contain, resolve, close), false
positives, SLA escalation, filing detections from events, and the response metrics.

Every change is recorded in the audit log and published on the bus as an Incident Finding.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, out, settings
from tsuba.cli.detect import (
    AnomalyOption,
    NoBuiltinOption,
    RulesOption,
    detect_events,
    open_lines,
    select_rules,
)
from tsuba.cli.principal import local_actor
from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent, Severity
from tsuba.core.identity import parse_duration, parse_instant
from tsuba.core.platform import Platform
from tsuba.soar.actions import builtin_actions, rotated_keys_dir
from tsuba.soar.blocklist import block_network, list_blocked, unblock_network
from tsuba.soar.external import falco_alerts, trivy_alert
from tsuba.soar.incidents import (
    ACTIVE,
    Incident,
    IncidentService,
    PostMortem,
    Priority,
    State,
)
from tsuba.soar.metrics import compute_metrics
from tsuba.soar.playbooks import PlaybookRunner, load_playbook, to_cacao
from tsuba.soar.rules import Alert
from tsuba.soar.rules.jsonl import read_events
from tsuba.soar.rules.spec import yaml_problem
from tsuba.soar.siem import cef, ecs, ecs_bulk, syslog_5424
from tsuba.soar.siem.ocsf_schema import InvalidOcsfEvent
from tsuba.soar.siem.sinks import hec_line, ocsf_line

app = typer.Typer(
    help="Incidents and response: list, show, ack, contain, resolve, close, metrics.",
    no_args_is_help=True,
)

IdArg = Annotated[int, typer.Argument(help="The incident number, from 'incidents'.")]
NoteOption = Annotated[str, typer.Option("--note", "-m", help="Why, for the record.")]
_COLUMNS = ["id", "severity", "state", "title", "alert_count", "opened_at", "respond_due_at",
            "sla_breached"]


@contextmanager
def _service(home: Path | None) -> Iterator[IncidentService]:
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        yield IncidentService(platform.engine, emit=platform.record, actor=local_actor())


def _show(incident: Incident, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(incident.to_dict(full=True))
        return
    data = incident.to_dict(full=True)
    alerts, history = data.pop("alerts"), data.pop("history")
    emit(data, fmt)
    out.print("")
    emit([{k: a[k] for k in ("id", "rule_id", "severity", "hits", "last_seen",
                             "false_positive")} for a in alerts], fmt, title="alerts")
    emit(history, fmt, columns=["at", "actor", "action", "from", "to", "note"],
         title="history")


def _changed(incident: Incident, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(incident.to_dict())
    else:
        out.print(f"incident {incident.id} ({incident.severity.value}) is now "
                  f"{incident.state.value}", highlight=False, markup=False)


@app.command("incidents")
def incidents_cmd(
    state: Annotated[
        list[State] | None,
        typer.Option("--state", help="Only these states (repeatable); default: not closed."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Closed incidents too.")] = False,
    severity: Annotated[
        str | None, typer.Option("--severity", help="Only this priority, P0 to P3.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """List incidents, worst first."""
    if state and all_:
        raise InputError("--state and --all exclude each other: name states or ask for all")
    states: tuple[State, ...] | None = tuple(state) if state else (
        None if all_ else (*ACTIVE, State.RESOLVED)
    )
    prio = Priority.parse(severity) if severity else None
    with _service(home) as svc:
        rows = [i.to_dict() for i in svc.list(states=states, severity=prio)]
    emit(rows, fmt, columns=_COLUMNS)


@app.command("show")
def show_cmd(incident: IdArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """An incident with its alerts, entities, post-mortem and history."""
    with _service(home) as svc:
        _show(svc.get(incident), fmt)


@app.command("ack")
def ack_cmd(incident: IdArg, note: NoteOption = "", home: HomeOption = None,
            fmt: FormatOption = Format.text) -> None:
    """Acknowledge: someone is on it (stops the response-time clock)."""
    with _service(home) as svc:
        _changed(svc.acknowledge(incident, note), fmt)


@app.command("contain")
def contain_cmd(incident: IdArg, note: NoteOption = "", home: HomeOption = None,
                fmt: FormatOption = Format.text) -> None:
    """Contained: the harm is stopped (key revoked, principal blocked, model quarantined)."""
    with _service(home) as svc:
        _changed(svc.contain(incident, note), fmt)


@app.command("resolve")
def resolve_cmd(incident: IdArg, note: NoteOption = "", home: HomeOption = None,
                fmt: FormatOption = Format.text) -> None:
    """Resolved: the cause is fixed."""
    with _service(home) as svc:
        _changed(svc.resolve(incident, note), fmt)


@app.command("reopen")
def reopen_cmd(incident: IdArg, note: NoteOption = "", home: HomeOption = None,
               fmt: FormatOption = Format.text) -> None:
    """Reopen a resolved incident."""
    with _service(home) as svc:
        _changed(svc.reopen(incident, note), fmt)


def _postmortem(path: Path) -> PostMortem:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"post-mortem file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read post-mortem file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"post-mortem file {path} is not YAML or JSON: {yaml_problem(exc)}"
        ) from None
    return PostMortem.parse(data)


@app.command("close")
def close_cmd(
    incident: IdArg,
    postmortem: Annotated[
        Path | None,
        typer.Option("--postmortem", help="YAML/JSON: summary, root_cause, actions, lessons. "
                     "Required for P0 and P1."),
    ] = None,
    note: NoteOption = "",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Close a resolved incident (P0 and P1 need --postmortem)."""
    record = _postmortem(postmortem) if postmortem is not None else None
    with _service(home) as svc:
        _changed(svc.close(incident, record, note), fmt)


@app.command("false-positive")
def false_positive_cmd(
    alert: Annotated[str, typer.Argument(help="The alert id, from 'show'.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the alert is wrong.")],
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Mark an alert false positive; an incident of only false alerts closes itself."""
    with _service(home) as svc:
        record = svc.mark_false_positive(alert, reason)
        incident = svc.get(record.incident_id)
    if fmt is Format.json:
        emit_json({"alert": record.to_dict(), "incident": incident.to_dict()})
    else:
        out.print(f"alert {record.id} marked false positive; incident {incident.id} is "
                  f"{incident.state.value}", highlight=False, markup=False)


@app.command("sla-check")
def sla_check_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Escalate open incidents past their response time; exit 1 if any was escalated."""
    with _service(home) as svc:
        escalated = svc.check_sla()
    emit([i.to_dict() for i in escalated], fmt, columns=_COLUMNS)
    if escalated:
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd(
    events: Annotated[Path, typer.Argument(help="JSON-lines events ('-' for stdin).")],
    *,
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    anomaly: AnomalyOption = False,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Run the detection rules over events and file the alerts as incidents."""
    alerts, seen = detect_events(select_rules(rules, not no_builtin), events, anomaly=anomaly)
    filed: list[dict[str, Any]] = []
    with _service(home) as svc:
        for alert in alerts:
            result = svc.ingest(alert)
            filed.append({"alert": alert.id, "rule_id": alert.rule_id,
                          "incident": result.incident.id,
                          "severity": result.incident.severity.value,
                          "opened": result.opened, "deduplicated": result.deduplicated})
    if fmt is Format.json:
        emit_json({"events": seen, "alerts": filed})
    else:
        emit(filed, fmt)
        out.print(f"{len(filed)} alert(s) from {seen} event(s), "
                  f"{len({f['incident'] for f in filed})} incident(s)",
                  highlight=False, markup=False)


def _file_alerts(home: Path | None, alerts: list[Alert], fmt: Format, source: str) -> None:
    filed: list[dict[str, Any]] = []
    with _service(home) as svc:
        for alert in alerts:
            result = svc.ingest(alert)
            filed.append({"alert": alert.id, "rule_id": alert.rule_id,
                          "severity": alert.severity.name.lower(),
                          "incident": result.incident.id, "opened": result.opened,
                          "deduplicated": result.deduplicated})
    if fmt is Format.json:
        emit_json({"source": source, "alerts": filed})
    else:
        emit(filed, fmt)


@app.command("import-falco")
def import_falco_cmd(
    alerts: Annotated[Path, typer.Argument(help="Falco JSON alerts, one a line ('-': stdin).")],
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """File Falco runtime alerts as incidents beside tsuba's own detections."""
    with open_lines(alerts) as lines:
        try:
            parsed = list(falco_alerts(lines))
        except UnicodeDecodeError:
            raise InputError(f"alert file {alerts} is not UTF-8 text") from None
    _file_alerts(home, parsed, fmt, "falco")


@app.command("import-trivy")
def import_trivy_cmd(
    report: Annotated[Path, typer.Argument(help="A Trivy JSON report ('-': stdin).")],
    min_severity: Annotated[
        str, typer.Option("--min-severity", help="File only findings at least this severe.")
    ] = "high",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """File a Trivy report's serious findings as one alert for the artifact."""
    try:
        threshold = Severity.parse(min_severity)
    except ValueError as exc:
        raise InputError(f"--min-severity: {exc}") from None
    with open_lines(report) as lines:
        try:
            text = "".join(lines)
        except UnicodeDecodeError:
            raise InputError(f"report {report} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"report {report} is not valid JSON: {exc.msg} at line "
                         f"{exc.lineno}") from None
    alert = trivy_alert(data, min_severity=threshold)
    _file_alerts(home, [alert] if alert is not None else [], fmt, "trivy")


class SiemFormat(StrEnum):
    ocsf = "ocsf"
    cef = "cef"
    syslog = "syslog"
    ecs = "ecs"
    hec = "hec"


def _siem_line(event: SecurityEvent, to: SiemFormat, index: str | None,
               hostname: str | None, *, validate: bool = True) -> bytes:
    if to is SiemFormat.cef:
        return cef(event).encode("utf-8", "replace") + b"\n"
    if to is SiemFormat.syslog:
        return syslog_5424(event, hostname=hostname) + b"\n"
    if to is SiemFormat.ecs:
        return ecs_bulk([event], index) if index else _json_line(ecs(event))
    if to is SiemFormat.hec:
        return hec_line(event, validate=validate, host=hostname, index=index)
    return ocsf_line(event, validate=validate)


def _json_line(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "replace") + b"\n"


@app.command("export")
def export_cmd(  # noqa: PLR0917 - typer options
    events: Annotated[Path, typer.Argument(help="JSON-lines events ('-' for stdin).")],
    to: Annotated[SiemFormat, typer.Option("--to", help="The SIEM form.")] = SiemFormat.ocsf,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Append to this file (default stdout).")
    ] = None,
    index: Annotated[
        str | None, typer.Option("--index", help="ECS: write _bulk NDJSON for this index; "
                                 "HEC: the Splunk index.")
    ] = None,
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="syslog HOSTNAME / HEC host.")
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate",
                           help="OCSF and HEC: refuse events that break the OCSF schema.")
    ] = True,
) -> None:
    """Convert events to OCSF, CEF, RFC 5424 syslog, Elastic ECS or Splunk HEC, one a line."""
    chunks: list[bytes] = []
    with open_lines(events) as lines:
        try:
            for number, event in enumerate(read_events(lines), start=1):
                try:
                    chunks.append(_siem_line(event, to, index, hostname, validate=validate))
                except InvalidOcsfEvent as exc:
                    raise InputError(f"event {number}: {exc.message}") from None
        except UnicodeDecodeError:
            raise InputError(f"event file {events} is not UTF-8 text") from None
    data = b"".join(chunks)  # all lines checked before anything is written
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with output.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc}") from None


playbook_app = typer.Typer(
    help="Playbooks: run one on an incident (--dry-run first), export or import CACAO v2.0.",
    no_args_is_help=True,
)
app.add_typer(playbook_app, name="playbook")


@playbook_app.command("run")
def playbook_run_cmd(
    playbook: Annotated[Path, typer.Argument(help="Playbook YAML (or CACAO v2.0 JSON).")],
    *,
    incident: Annotated[int, typer.Option("--incident", help="The incident to act on.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; do nothing.")
                       ] = False,
    approved_by: Annotated[
        str | None, typer.Option("--approved-by", help="The second person approving "
                                 "destructive steps.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Run a playbook on an incident; exit 1 when a step failed or waits for approval."""
    spec = load_playbook(playbook)
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        svc = IncidentService(platform.engine, emit=platform.record, actor=local_actor())
        actions = builtin_actions(platform, svc, smtp=platform.settings.soar.smtp,
                                  rotated_key_dir=rotated_keys_dir(platform.settings))
        runner = PlaybookRunner(svc, actions, emit=platform.record)
        results = runner.run(spec, incident, dry_run=dry_run, approved_by=approved_by)
    rows = [r.to_dict() for r in results]
    if fmt is Format.json:
        emit_json({"playbook": spec.id, "incident": incident, "dry_run": dry_run,
                   "steps": rows})
    else:
        shown = [{**r, "params": json.dumps(r["params"], ensure_ascii=False, default=str)}
                 for r in rows]
        emit(shown, fmt, columns=["step", "action", "status", "params", "detail"])
    if any(r.status in ("failed", "needs_approval") for r in results):
        raise typer.Exit(1)


@playbook_app.command("export")
def playbook_export_cmd(
    playbook: Annotated[Path, typer.Argument(help="Playbook YAML.")],
) -> None:
    """Print the playbook as OASIS CACAO v2.0 JSON."""
    emit_json(to_cacao(load_playbook(playbook)))


@playbook_app.command("import")
def playbook_import_cmd(
    document: Annotated[Path, typer.Argument(help="CACAO v2.0 playbook JSON.")],
) -> None:
    """Print a CACAO v2.0 playbook as tsuba playbook YAML."""
    spec = load_playbook(document)
    data = spec.model_dump(mode="json", exclude_defaults=False)
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


blocklist_app = typer.Typer(
    help="Addresses the gateway refuses (what the block_ip playbook action adds).",
    no_args_is_help=True,
)
app.add_typer(blocklist_app, name="blocklist")
NetworkArg = Annotated[str, typer.Argument(help="An address (203.0.113.9) or network "
                                           "(203.0.113.0/24).")]


@blocklist_app.command("list")
def blocklist_list_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """The blocks in force."""
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        rows = [b.to_dict() for b in list_blocked(platform.engine)]
    emit(rows, fmt, columns=["network", "reason", "blocked_by", "blocked_at", "expires_at",
                             "incident_id"])


@blocklist_app.command("add")
def blocklist_add_cmd(
    network: NetworkArg,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    for_: Annotated[
        str | None, typer.Option("--for", help="Lift it after this long (e.g. 24h).")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Refuse requests from an address or network at every gateway (within a second)."""
    expires = datetime.now(UTC) + parse_duration(for_) if for_ else None
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        entry, created = block_network(platform.engine, network, reason=reason,
                                       actor=local_actor(), expires_at=expires,
                                       emit=platform.record)
    if fmt is Format.json:
        emit_json({**entry.to_dict(), "created": created})
    else:
        out.print(f"{entry.network} {'blocked' if created else 'was already blocked'}",
                  highlight=False, markup=False)


@blocklist_app.command("remove")
def blocklist_remove_cmd(network: NetworkArg, home: HomeOption = None) -> None:
    """Lift a block."""
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        removed = unblock_network(platform.engine, network, actor=local_actor(),
                                  emit=platform.record)
    if not removed:
        raise InputError(f"{network} is not on the block list (see 'tsuba soar blocklist "
                         "list')")
    out.print(f"block of {network} lifted", highlight=False, markup=False)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    raw = text.strip()
    if raw[:1].isdigit() and raw[-1:] in "wdhms" and "-" not in raw and ":" not in raw:
        return datetime.now(UTC) - parse_duration(raw)
    try:
        return parse_instant(raw)
    except InputError:
        raise InputError(f"invalid --since {text!r}: use a duration like 7d or an ISO-8601 "
                         "instant with a timezone") from None


@app.command("metrics")
def metrics_cmd(
    since: Annotated[
        str | None, typer.Option("--since", help="Only incidents opened since (7d, or ISO).")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """MTTD, MTTA, MTTR, false-positive rate, open incidents by priority, SLA breaches."""
    start = _since(since)
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        metrics = compute_metrics(platform.engine, since=start)
    emit(metrics.to_dict(), fmt)


@app.command("serve")
def serve_cmd(home: HomeOption = None) -> None:
    """Run the response loop alone, without the HTTP server, until interrupted: detection,
    incidents, playbooks, SLA escalation, SIEM export (standby while another loop runs)."""
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from tsuba.cli.common import err  # noqa: PLC0415
    from tsuba.soar.service import ResponseService  # noqa: PLC0415

    cfg = settings(home)
    if not cfg.soar.enabled:
        raise InputError("soar.enabled is false in the configuration: enable it to serve the "
                         "response loop")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Platform.open(cfg) as platform:
        service = ResponseService(platform, registry=None).start()
        err.print(f"response loop {service.holder}: active once it holds the lease (one per "
                  "database); Ctrl-C stops it", highlight=False)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            service.stop()


@app.command("status")
def status_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """The response loop: lease holder, subscriber lag, sinks, last errors; exit 1 when no
    loop holds the lease."""
    from tsuba.soar.service import loop_status  # noqa: PLC0415

    cfg = settings(home)
    with Platform.open(cfg) as platform:
        data = loop_status(platform.engine)
    if fmt is Format.json:
        emit_json(data)
    else:
        emit({k: data[k] for k in ("active", "state", "holder", "renewed_at", "expires_at",
                                   "head", "rules", "playbooks")}, fmt)
        emit(data["subscribers"], fmt, columns=["name", "position", "lag", "dead_letters",
                                                "errors", "last_error"], title="subscribers")
        emit(data["sinks"], fmt, columns=["name", "kind", "target"], title="sinks")
    if not data["active"]:
        raise typer.Exit(1)
