"""Playbooks: what to do when an incident of a kind opens, step by step, safely.

A playbook (YAML) has a trigger (rule ids, glob patterns allowed, and a minimum priority)
and steps.  A step names an action, its parameters (``{alert.group.src_ip}`` fills in
from the incident and its alert) and an optional ``when`` condition.

- Dry run: the plan, with parameters filled in, and nothing done.
- Idempotent: each step on each incident runs once; a re-run reports it as already done.
- Two people for destructive actions (revoking a key, blocking, quarantining): the run
  needs ``approved_by`` naming someone other than who runs it, or the step waits.  A step
  may say ``approval: auto``: whoever reviewed the playbook approved it in advance, so an
  automated run (the response worker) acts at once and the audit event names the
  playbook, its author and version as the approval.  ``approval: required`` asks for a
  second person even on a step that is not destructive.
- Every step is audited; a failing action is retried, then the run stops and escalates
  (an event and an incident note): never dropped silently.

Playbooks export to and import from OASIS CACAO v2.0 JSON; tsuba's own step details
travel in ``x_tsuba`` extension properties so a round trip is exact.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from tsuba.core.errors import InputError, TsubaError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.soar.incidents import Emit, Incident, IncidentService, Priority
from tsuba.soar.models import ActionRunRow
from tsuba.soar.rules.spec import yaml_problem

_ID = r"^[a-z0-9][a-z0-9_.-]{0,127}$"
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
_NAMESPACE = uuid.UUID("6f1d3f0e-3c2b-5a7e-9d1e-7473756261aa")


class Action(Protocol):
    """Something a step can do; ``destructive`` actions need a second person's approval."""

    @property
    def destructive(self) -> bool: ...

    def __call__(self, params: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class FunctionAction:
    """An action from a plain function (every built-in one in :mod:`tsuba.soar.actions`)."""

    run: Callable[[dict[str, Any]], str]
    destructive: bool = False

    def __call__(self, params: dict[str, Any]) -> str:
        return self.run(params)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TriggerSpec(_Spec):
    rules: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    min_severity: Priority = Priority.P3

    @field_validator("min_severity", mode="before")
    @classmethod
    def _prio(cls, value: object) -> Priority:
        return Priority.parse(str(value))


Approval = Literal["required", "auto"]


class StepSpec(_Spec):
    id: str = Field(pattern=_ID)
    action: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    params: dict[str, Any] = Field(default_factory=dict)
    when: dict[str, Any] | None = None
    # None: a second person for destructive actions, none for the others.
    approval: Approval | None = None

    def needs_approval(self, destructive: bool) -> bool:
        return self.approval == "required" or (self.approval is None and destructive)


class PlaybookSpec(_Spec):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    # Who wrote and which version: named in the audit of steps it pre-approves.
    author: str | None = Field(default=None, max_length=128)
    version: str | None = Field(default=None, max_length=64)
    trigger: TriggerSpec = Field(default_factory=TriggerSpec)
    steps: list[StepSpec] = Field(min_length=1, max_length=100)

    @property
    def approver(self) -> str:
        """The playbook as the approval of its ``approval: auto`` steps."""
        name = f"playbook:{self.id}" + (f"@{self.version}" if self.version else "")
        return name + (f" by {self.author}" if self.author else "")

    def matches(self, incident: Incident, rule_ids: list[str]) -> bool:
        rank = int(incident.severity.value[1])
        if rank > int(self.trigger.min_severity.value[1]):
            return False
        return any(fnmatch.fnmatchcase(r, pattern)
                   for r in rule_ids for pattern in self.trigger.rules)


def parse_playbook(data: Any, source: str = "playbook") -> PlaybookSpec:
    if not isinstance(data, dict):
        raise InputError(f"{source}: a playbook is a mapping (id, title, trigger, steps)")
    try:
        spec = PlaybookSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "playbook"
        raise InputError(f"{source}: {loc}: {str(err['msg']).removeprefix('Value error, ')}"
                         ) from None
    ids = [s.id for s in spec.steps]
    if len(ids) != len(set(ids)):
        raise InputError(f"{source}: step ids must be unique")
    for step in spec.steps:
        if step.when is not None:
            _check_when(step.when, f"{source}: step {step.id!r}: when")
    return spec


def load_playbook(path: Path) -> PlaybookSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"playbook file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read playbook file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    if isinstance(data, dict) and data.get("spec_version") == "cacao-2.0":
        return from_cacao(data, str(path))
    return parse_playbook(data, str(path))


# -- context, conditions, parameters ---------------------------------------------------

def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


_WHEN_OPS = {"eq", "in", "not_in", "exists", "regex"}


def _check_when(when: dict[str, Any], where: str) -> None:
    for path, cond in when.items():
        if isinstance(cond, dict):
            unknown = set(cond) - _WHEN_OPS
            if unknown or not cond:
                raise InputError(f"{where}: {path}: operators are {', '.join(sorted(_WHEN_OPS))}")
            if "regex" in cond:
                try:
                    re.compile(str(cond["regex"]))
                except re.error as exc:
                    raise InputError(f"{where}: {path}: invalid regex: {exc}") from None


def _op(op: str, value: Any, arg: Any) -> bool:
    if op == "eq":
        return bool(value == arg)
    if op == "in":
        return isinstance(arg, list) and value in arg
    if op == "not_in":
        return isinstance(arg, list) and value not in arg
    if op == "exists":
        return (value is not None) is bool(arg)
    return isinstance(value, str) and re.search(str(arg), value) is not None


def _holds(when: dict[str, Any], context: Mapping[str, Any]) -> bool:
    for path, cond in when.items():
        value = _lookup(context, path)
        ops = cond if isinstance(cond, dict) else (
            {"in": cond} if isinstance(cond, list) else {"eq": cond})
        if not all(_op(op, value, arg) for op, arg in ops.items()):
            return False
    return True


def _render(value: Any, context: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        def fill(match: re.Match[str]) -> str:
            found = _lookup(context, match.group(1))
            if found is None or isinstance(found, dict | list):
                raise InputError(f"{where}: {{{match.group(1)}}} has no value for this "
                                 "incident")
            return str(found)
        return _PLACEHOLDER.sub(fill, value)
    if isinstance(value, list):
        return [_render(v, context, where) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, context, where) for k, v in value.items()}
    return value


# -- running -----------------------------------------------------------------------------

Status = Literal["planned", "done", "skipped", "already_done", "needs_approval", "failed"]


@dataclass(frozen=True)
class StepResult:
    step: str
    action: str
    status: Status
    params: dict[str, Any]
    detail: str = ""
    attempts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "status": self.status,
                "params": self.params, "detail": self.detail, "attempts": self.attempts}


class PlaybookRunner:
    """Runs playbooks against stored incidents with the actions it is given."""

    def __init__(
        self,
        incidents: IncidentService,
        actions: Mapping[str, Action],
        *,
        emit: Emit | None = None,
        max_attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise InputError("max_attempts must be at least 1")
        self.incidents = incidents
        self.actions = dict(actions)
        self._emit = emit
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._sleep = sleep

    @property
    def actor(self) -> str:
        return self.incidents.actor

    def context(self, incident: Incident) -> dict[str, Any]:
        alert = incident.alerts[0].data if incident.alerts else {}
        return {"incident": incident.to_dict(full=True), "alert": alert}

    def run(
        self,
        playbook: PlaybookSpec,
        incident_id: int,
        *,
        dry_run: bool = False,
        approved_by: str | None = None,
    ) -> list[StepResult]:
        missing = sorted({s.action for s in playbook.steps} - set(self.actions))
        if missing:
            raise InputError(f"playbook {playbook.id!r} uses actions this runner does not "
                             f"have: {', '.join(missing)}")
        if approved_by is not None and approved_by == self.actor:
            raise InputError("approval must come from a second person, not the one running "
                             "the playbook")
        incident = self.incidents.get(incident_id)
        context = self.context(incident)
        results: list[StepResult] = []
        for step in playbook.steps:
            result = self._step(playbook, incident, step, context, dry_run=dry_run,
                                approved_by=approved_by)
            results.append(result)
            if result.status == "failed":
                break  # later steps may depend on this one; the failure is escalated
        return results

    def _step(
        self, playbook: PlaybookSpec, incident: Incident, step: StepSpec,
        context: dict[str, Any], *, dry_run: bool, approved_by: str | None,
    ) -> StepResult:
        action = self.actions[step.action]
        where = f"playbook {playbook.id!r} step {step.id!r}"
        if step.when is not None and not _holds(step.when, context):
            shown: dict[str, Any] = {}
            if dry_run:  # show what it would have done, where the incident says enough
                with contextlib.suppress(InputError):
                    shown = _render(step.params, context, where)
            return StepResult(step.id, step.action, "skipped", shown, "condition not met")
        params = _render(step.params, context, where)
        key = hashlib.sha256(json.dumps(
            [playbook.id, step.id, incident.id, params], sort_keys=True, default=str
        ).encode()).hexdigest()
        if self._done(key):
            return StepResult(step.id, step.action, "already_done", params)
        needs = step.needs_approval(action.destructive)
        # approval: auto on a destructive step, and no person approving this run either
        pre_approved = action.destructive and not needs and approved_by is None
        if dry_run:
            note = (" (needs approval by a second person)" if needs
                    else f" (pre-approved by {playbook.approver})" if pre_approved else "")
            return StepResult(step.id, step.action, "planned", params, f"would run{note}")
        if needs and approved_by is None:
            why = "destructive" if action.destructive else "approval: required"
            result = StepResult(step.id, step.action, "needs_approval", params,
                                f"{why}: run again with the approval of a second person")
            self._audit(playbook, incident, result, severity=Severity.MEDIUM)
            return result
        if pre_approved:
            approved_by = playbook.approver
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                detail = action(params)
            except Exception as exc:  # any failure is retried, then escalated
                error = (exc.message if isinstance(exc, TsubaError)
                         else f"{type(exc).__name__}: {exc}")
                if attempt < self.max_attempts:
                    self._sleep(self.backoff * 2 ** (attempt - 1))
                continue
            result = StepResult(step.id, step.action, "done", params, detail, attempt)
            self._record(key, playbook, incident, result, approved_by)
            self._audit(playbook, incident, result, approved_by=approved_by,
                        pre_approved=pre_approved)
            return result
        result = StepResult(step.id, step.action, "failed", params,
                            f"failed after {self.max_attempts} attempt(s): {error}",
                            self.max_attempts)
        self._audit(playbook, incident, result, severity=Severity.HIGH)
        self.incidents.add_note(incident.id, f"playbook {playbook.id} step {step.id} "
                                f"({step.action}) failed and needs a person: {error}")
        return result

    def _done(self, key: str) -> bool:
        with Session(self.incidents.engine) as s:
            return s.scalar(select(ActionRunRow.id).where(ActionRunRow.key == key)) is not None

    def _record(self, key: str, playbook: PlaybookSpec, incident: Incident,
                result: StepResult, approved_by: str | None) -> None:
        # A concurrent run of the same step may have recorded it first: that is the same fact.
        with contextlib.suppress(sa_exc.IntegrityError):
            self._insert(key, playbook, incident, result, approved_by)

    def _insert(self, key: str, playbook: PlaybookSpec, incident: Incident,
                result: StepResult, approved_by: str | None) -> None:
        with Session(self.incidents.engine) as s, s.begin():
            s.add(ActionRunRow(
                key=key, incident_id=incident.id, playbook=playbook.id, step=result.step,
                action=result.action, status=result.status, attempts=result.attempts,
                detail=result.detail[:4000], actor=self.actor[:128],
                approved_by=approved_by[:128] if approved_by else None, at=datetime.now(UTC),
            ))

    def _audit(self, playbook: PlaybookSpec, incident: Incident, result: StepResult, *,
               severity: Severity = Severity.INFO, approved_by: str | None = None,
               pre_approved: bool = False) -> None:
        if self._emit is None:
            return
        how = f" (pre-approved by {playbook.approver})" if pre_approved else ""
        self._emit(SecurityEvent(
            event_class=EventClass.INCIDENT_FINDING,
            activity="update",
            severity=severity,
            actor=self.actor,
            resource=f"incident/{incident.id}",
            outcome=Outcome.SUCCESS if result.status == "done" else Outcome.FAILURE,
            message=f"playbook {playbook.id} step {result.step} ({result.action}): "
                    f"{result.status}{how}" + (f": {result.detail}" if result.detail else ""),
            attributes={**result.to_dict(), "action": "playbook_step",
                        "step_action": result.action, "playbook": playbook.id,
                        "playbook_version": playbook.version,
                        "playbook_author": playbook.author,
                        "approved_by": approved_by, "pre_approved": pre_approved},
        ))


def webhook_action(*, timeout: float = 10.0) -> FunctionAction:
    """POST ``{"text": ...}`` (what Slack and Teams incoming webhooks accept) to ``url``."""

    def post(params: dict[str, Any]) -> str:
        url, text = params.get("url"), params.get("text")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InputError("webhook needs a 'url' (http or https)")
        if not isinstance(text, str) or not text:
            raise InputError("webhook needs a 'text'")
        response = httpx.post(url, json={"text": text}, timeout=timeout)
        if response.status_code >= 300:
            raise InputError(f"webhook answered HTTP {response.status_code}")
        return f"posted to {url.split('?', 1)[0]} (HTTP {response.status_code})"

    return FunctionAction(post)


def note_action(incidents: IncidentService) -> FunctionAction:
    """Write ``text`` into the incident's history (``incident`` is filled in by the runner)."""

    def note(params: dict[str, Any]) -> str:
        incident, text = params.get("incident"), params.get("text")
        if not isinstance(incident, int | str) or not str(incident).isdigit():
            raise InputError("incident_note needs 'incident' (e.g. '{incident.id}')")
        incidents.add_note(int(incident), str(text or ""))
        return f"note added to incident {incident}"

    return FunctionAction(note)


# -- CACAO v2.0 ----------------------------------------------------------------------------

def _cacao_id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, '/'.join(parts))}"


def to_cacao(playbook: PlaybookSpec, *, created: datetime | None = None) -> dict[str, Any]:
    """The playbook as a CACAO v2.0 document (workflow of action and if-condition steps)."""
    stamp = (created or datetime.now(UTC)).astimezone(UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    start, end = _cacao_id("start", playbook.id), _cacao_id("end", playbook.id)
    workflow: dict[str, Any] = {end: {"type": "end", "name": "end"}}
    following = end
    for step in reversed(playbook.steps):
        action_id = _cacao_id("action", playbook.id, step.id)
        workflow[action_id] = {
            "type": "action",
            "name": step.id,
            "commands": [{"type": "manual", "command": step.action}],
            "on_completion": following,
            "x_tsuba": {"action": step.action, "params": step.params,
                        **({"approval": step.approval} if step.approval else {})},
        }
        following = action_id
        if step.when is not None:
            cond_id = _cacao_id("if-condition", playbook.id, step.id)
            workflow[cond_id] = {
                "type": "if-condition",
                "name": f"when {step.id}",
                "condition": json.dumps(step.when, sort_keys=True),
                "on_true": action_id,
                "on_false": workflow[action_id]["on_completion"],
                "x_tsuba": {"when": step.when},
            }
            following = cond_id
    workflow[start] = {"type": "start", "name": "start", "on_completion": following}
    return {
        "type": "playbook",
        "spec_version": "cacao-2.0",
        "id": _cacao_id("playbook", playbook.id),
        "name": playbook.title,
        "description": playbook.description,
        "playbook_types": ["remediation"],
        "created_by": _cacao_id("identity", "tsuba"),
        "created": stamp,
        "modified": stamp,
        "workflow_start": start,
        "workflow": workflow,
        "x_tsuba": {"id": playbook.id, "trigger": playbook.trigger.model_dump(mode="json"),
                    **{k: v for k, v in (("author", playbook.author),
                                         ("version", playbook.version)) if v is not None}},
    }


def from_cacao(doc: Any, source: str = "CACAO playbook") -> PlaybookSpec:
    """A CACAO v2.0 playbook back into a tsuba playbook (the subset ``to_cacao`` writes)."""
    if not isinstance(doc, dict) or doc.get("type") != "playbook" or \
            doc.get("spec_version") != "cacao-2.0":
        raise InputError(f"{source}: not a CACAO v2.0 playbook (type playbook, spec_version "
                         "cacao-2.0)")
    workflow, start = doc.get("workflow"), doc.get("workflow_start")
    if not isinstance(workflow, dict) or not isinstance(start, str) or start not in workflow:
        raise InputError(f"{source}: workflow_start must name a step of the workflow")
    raw_ext = doc.get("x_tsuba")
    ext: dict[str, Any] = raw_ext if isinstance(raw_ext, dict) else {}
    steps: list[dict[str, Any]] = []
    pending_when: dict[str, Any] | None = None
    current: Any = workflow[start].get("on_completion") if isinstance(workflow[start], dict) \
        else None
    seen: set[str] = {start}
    while isinstance(current, str):
        if current in seen or current not in workflow:
            raise InputError(f"{source}: workflow loops or names a missing step {current!r}")
        seen.add(current)
        node = workflow[current]
        if not isinstance(node, dict):
            raise InputError(f"{source}: step {current!r} must be an object")
        kind = node.get("type")
        if kind == "end":
            break
        if kind == "if-condition":
            x = node.get("x_tsuba")
            if not isinstance(x, dict) or not isinstance(x.get("when"), dict):
                raise InputError(f"{source}: condition {current!r} has no tsuba 'when'")
            pending_when = x["when"]
            current = node.get("on_true")
            continue
        if kind != "action":
            raise InputError(f"{source}: step type {kind!r} is not supported (action, "
                             "if-condition, start, end)")
        step = _cacao_action(node, f"{source}: action step {current!r}")
        if pending_when is not None:
            step["when"], pending_when = pending_when, None
        steps.append(step)
        current = node.get("on_completion")
    data: dict[str, Any] = {k: ext[k] for k in ("author", "version") if k in ext}
    data.update(id=ext.get("id") or _slug(str(doc.get("name", "cacao"))),
                title=doc.get("name") or "CACAO playbook",
                description=doc.get("description") or "", steps=steps)
    if isinstance(ext.get("trigger"), dict):
        data["trigger"] = ext["trigger"]
    return parse_playbook(data, source)


def _cacao_action(node: dict[str, Any], where: str) -> dict[str, Any]:
    x = node.get("x_tsuba")
    if not isinstance(x, dict) or not isinstance(x.get("action"), str):
        raise InputError(f"{where} has no tsuba action")
    step: dict[str, Any] = {"id": node.get("name"), "action": x["action"],
                            "params": x.get("params") or {}}
    if "approval" in x:
        step["approval"] = x["approval"]
    return step


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:100] or "cacao"
