"""``tsuba detect``: the detection rules, run over exported or stored events.

``replay`` reads JSON lines (the form ``tsuba audit append`` reads) and prints the alerts
the rules raise; it exits 1 when there is at least one alert, like a scanner with findings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from tsuba.cli.common import Format, FormatOption, emit, emit_json, out
from tsuba.core.errors import InputError
from tsuba.soar.anomaly import BaselineDetector
from tsuba.soar.rules import Alert, DetectionEngine, Rule, builtin_rules, load_rules
from tsuba.soar.rules.jsonl import read_events
from tsuba.soar.rules.views import authentication_view

app = typer.Typer(
    help="Detection rules: list the pack, test a rule, replay events through the rules.",
    no_args_is_help=True,
)

RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="A YAML rule file to add (repeatable)."),
]
AnomalyOption = Annotated[
    bool,
    typer.Option("--anomaly", help="Also compare each principal with its own baseline."),
]
NoBuiltinOption = Annotated[
    bool, typer.Option("--no-builtin", help="Leave out the built-in rule pack.")
]
_ALERT_COLUMNS = ["time", "severity", "rule_id", "count", "group"]


@contextmanager
def open_lines(path: Path) -> Iterator[TextIO]:
    if str(path) == "-":
        yield sys.stdin
        return
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"event file {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read event file {path}: {exc}") from None
    with handle:
        yield handle


def select_rules(extra: list[Path] | None, builtin: bool) -> list[Rule]:
    rules = builtin_rules() if builtin else []
    seen = {r.id for r in rules}
    for path in extra or []:
        for rule in load_rules(path):
            if rule.id in seen:
                raise InputError(f"{path}: rule id {rule.id!r} is already defined; rename it")
            seen.add(rule.id)
            rules.append(rule)
    if not rules:
        raise InputError("no rules to run: drop --no-builtin or name a file with --rules")
    return rules


def detect_events(rules: list[Rule], events: Path, *, anomaly: bool = False
                  ) -> tuple[list[Alert], int]:
    """Alerts of the rules (and the per-principal baselines) over a JSON-lines file."""
    engine = DetectionEngine(rules)
    baselines = BaselineDetector() if anomaly else None
    alerts: list[Alert] = []
    seen = 0
    with open_lines(events) as lines:
        try:
            for stored in read_events(lines):
                seen += 1
                for event in authentication_view(stored):
                    alerts.extend(engine.process(event))
                if baselines is not None:
                    alerts.extend(baselines.process(stored))
        except UnicodeDecodeError:
            raise InputError(f"event file {events} is not UTF-8 text") from None
    if baselines is not None:
        alerts.extend(baselines.flush())
    return alerts, seen


def _alert_row(alert: Alert) -> dict[str, Any]:
    data = alert.to_dict()
    data["group"] = ", ".join(f"{k}={v}" for k, v in alert.group.items()) or "-"
    return data


def _show_alerts(alerts: list[Alert], events: int, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json({"events": events, "alerts": [a.to_dict() for a in alerts]})
        return
    emit([_alert_row(a) for a in alerts], fmt, columns=_ALERT_COLUMNS)
    out.print(f"{len(alerts)} alert(s) from {events} event(s)", highlight=False, markup=False)


@app.command("rules")
def rules_cmd(
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    fmt: FormatOption = Format.text,
) -> None:
    """List the detection rules with their OWASP LLM Top 10 and MITRE ATLAS mappings."""
    loaded = select_rules(rules, not no_builtin)
    if fmt is Format.json:
        emit_json([r.to_dict() for r in loaded])
        return
    rows = [
        {
            "id": r.id,
            "kind": r.spec.kind,
            "severity": r.spec.severity.name.lower(),
            "owasp_llm": ",".join(r.spec.owasp_llm) or "-",
            "mitre_atlas": ",".join(r.spec.mitre_atlas) or "-",
            "title": r.spec.title,
        }
        for r in loaded
    ]
    emit(rows, fmt)


@app.command("replay")
def replay_cmd(
    events: Annotated[Path, typer.Argument(help="JSON-lines events ('-' for stdin).")],
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    anomaly: AnomalyOption = False,
    fmt: FormatOption = Format.text,
) -> None:
    """Run the rules over events and print the alerts; exit 1 when any alert is raised."""
    alerts, count = detect_events(select_rules(rules, not no_builtin), events, anomaly=anomaly)
    _show_alerts(alerts, count, fmt)
    if alerts:
        raise typer.Exit(1)


@app.command("test")
def test_cmd(
    rule_file: Annotated[Path, typer.Argument(help="The YAML rule file to check.")],
    events: Annotated[Path, typer.Argument(help="JSON-lines events ('-' for stdin).")],
    expect: Annotated[
        int | None,
        typer.Option("--expect", min=0, help="Exit 1 unless exactly this many alerts fire."),
    ] = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Validate a rule file and run only its rules over sample events."""
    alerts, count = detect_events(load_rules(rule_file), events)
    _show_alerts(alerts, count, fmt)
    if expect is not None and len(alerts) != expect:
        if fmt is not Format.json:
            out.print(f"expected {expect} alert(s), got {len(alerts)}", highlight=False,
                      markup=False)
        raise typer.Exit(1)
