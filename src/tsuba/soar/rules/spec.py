"""The YAML rule language: its schema, and loading rule files with errors that name the rule.

A file holds ``rules:`` (a list) or one rule.  Each rule is one of four kinds:

- ``match``: every matching event raises an alert;
- ``threshold``: ``count`` matching events (or ``distinct`` values of a field) per group
  within a sliding ``window``;
- ``sequence``: ordered ``steps`` (each ``count`` times) per group within ``window``, e.g.
  five authentication failures and then a success from the same address;
- ``new_value``: a group (a key, a principal) seen from a value (a network) it had never
  used, once it has ``min_history`` events of history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from tsuba.core.errors import InputError
from tsuba.core.events import Severity
from tsuba.core.identity import parse_duration
from tsuba.soar.rules.fields import Predicate, compile_match, getter, match_classes

_MAX_SECONDS = 366 * 86400
_ID = r"^[a-z0-9][a-z0-9_.-]{0,127}$"


def _duration(value: object) -> timedelta:
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 10m or a number of seconds")
    if isinstance(value, int | float):
        if not 0 < value <= _MAX_SECONDS:
            raise ValueError(f"a duration must be longer than zero and at most {_MAX_SECONDS} s")
        return timedelta(seconds=value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except InputError as exc:
            raise ValueError(exc.message) from None
    raise ValueError("a duration is a string like 10m or a number of seconds")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_serializer("*", when_used="json")
    def _seconds(self, value: Any) -> Any:
        return f"{int(value.total_seconds())}s" if isinstance(value, timedelta) else value


class ThresholdSpec(_Spec):
    count: int = Field(ge=1)
    window: timedelta
    distinct: str | None = None

    _window = field_validator("window", mode="before")(_duration)


class StepSpec(_Spec):
    match: dict[str, Any]
    count: int = Field(default=1, ge=1, le=10_000)


class NewValueSpec(_Spec):
    fields: list[str] = Field(min_length=1)
    min_history: int = Field(default=1, ge=1)
    max_values: int = Field(default=256, ge=1, le=100_000)


class RuleSpec(_Spec):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    kind: Literal["match", "threshold", "sequence", "new_value"]
    severity: Severity
    match: dict[str, Any] | None = None
    group_by: list[str] = Field(default_factory=list)
    threshold: ThresholdSpec | None = None
    steps: list[StepSpec] | None = None
    window: timedelta | None = None
    new_value: NewValueSpec | None = None
    suppress: timedelta | None = None
    owasp_llm: list[str] = Field(default_factory=list)
    mitre_atlas: list[str] = Field(default_factory=list)
    mitre_attack: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        return Severity.parse(value)

    @field_validator("window", "suppress", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta | None:
        return None if value is None else _duration(value)

    @field_validator("owasp_llm")
    @classmethod
    def _owasp(cls, value: list[str]) -> list[str]:
        valid = {f"LLM{n:02d}" for n in range(1, 11)}
        for item in value:
            if item not in valid:
                raise ValueError(f"{item!r} is not an OWASP LLM Top 10 (2025) id, LLM01..LLM10")
        return value

    @field_validator("mitre_atlas")
    @classmethod
    def _atlas(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"AML\.T\d{4}(\.\d{3})?", item):
                raise ValueError(f"{item!r} is not a MITRE ATLAS technique id like AML.T0051")
        return value

    @field_validator("mitre_attack")
    @classmethod
    def _attack(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"T\d{4}(\.\d{3})?", item):
                raise ValueError(f"{item!r} is not a MITRE ATT&CK technique id like T1110")
        return value

    @model_validator(mode="after")
    def _shape(self) -> RuleSpec:
        needs = {
            "match": ("match",),
            "threshold": ("match", "threshold"),
            "sequence": ("steps", "window"),
            "new_value": ("match", "new_value"),
        }[self.kind]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} rule needs '{name}'")
        if self.kind == "sequence" and self.steps is not None and len(self.steps) < 2:
            raise ValueError("a sequence rule needs at least two steps")
        if self.kind in ("sequence", "new_value") and not self.group_by:
            raise ValueError(f"a {self.kind} rule needs 'group_by' (whose history to follow)")
        if not (self.owasp_llm or self.mitre_atlas or self.mitre_attack):
            raise ValueError("map the rule to at least one owasp_llm, mitre_atlas or "
                             "mitre_attack id")
        return self


@dataclass(frozen=True)
class Rule:
    """A validated rule with its match blocks compiled."""

    spec: RuleSpec
    match: Predicate | None
    steps: tuple[tuple[Predicate, int], ...]
    classes: frozenset[str] | None

    @property
    def id(self) -> str:
        return self.spec.id

    def to_dict(self) -> dict[str, Any]:
        data = self.spec.model_dump(mode="json", exclude_none=True)
        data["severity"] = self.spec.severity.name.lower()
        return data


def compile_rule(spec: RuleSpec) -> Rule:
    where = f"rule {spec.id!r}"
    for field in spec.group_by:
        getter(field)
    if spec.threshold is not None and spec.threshold.distinct:
        getter(spec.threshold.distinct)
    if spec.new_value is not None:
        for field in spec.new_value.fields:
            getter(field)
    # The engine routes events by class, so a block's own class test is already done.
    classes = match_classes(spec.match)
    skip = frozenset({"class"}) if classes is not None else frozenset()
    try:
        match = (
            compile_match(spec.match, f"{where}: match", skip=skip)
            if spec.match is not None else None
        )
        steps = tuple(
            (compile_match(s.match, f"{where}: steps[{i}].match"), s.count)
            for i, s in enumerate(spec.steps or ())
        )
    except InputError as exc:
        raise InputError(exc.message if exc.message.startswith(where) else
                         f"{where}: {exc.message}") from None
    if spec.kind == "sequence":
        step_classes = [match_classes(s.match) for s in spec.steps or ()]
        classes = (
            None if any(c is None for c in step_classes)
            else frozenset().union(*[c for c in step_classes if c is not None])
        )
    return Rule(spec=spec, match=match, steps=steps, classes=classes)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def parse_rules(text: str, source: str = "rules") -> list[Rule]:
    """Rules from YAML text; any problem is one InputError naming the source and the rule."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML: {yaml_problem(exc)}") from None
    if isinstance(data, dict) and "rules" in data:
        if set(data) - {"rules"}:
            extra = ", ".join(sorted(str(k) for k in set(data) - {"rules"}))
            raise InputError(f"{source}: unknown top-level key(s) {extra}; only 'rules'")
        items = data["rules"]
    elif isinstance(data, dict):
        items = [data]
    else:
        raise InputError(f"{source}: expected 'rules:' with a list of rules, or one rule")
    if not isinstance(items, list) or not items:
        raise InputError(f"{source}: 'rules' must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        name = item.get("id") if isinstance(item, dict) else None
        label = f"{source}: rule {name!r}" if name else f"{source}: rule #{index + 1}"
        if not isinstance(item, dict):
            raise InputError(f"{label}: must be a mapping")
        try:
            spec = RuleSpec.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "rule"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise InputError(f"{label}: {loc}: {msg}") from None
        if spec.id in seen:
            raise InputError(f"{label}: duplicate rule id; every id must be unique")
        seen.add(spec.id)
        try:
            rules.append(compile_rule(spec))
        except InputError as exc:
            raise InputError(f"{source}: {exc.message}") from None
    return rules


def load_rules(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"rule file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read rule file {path}: {exc}") from None
    return parse_rules(text, str(path))


def builtin_rules() -> list[Rule]:
    """The rule pack shipped with tsuba."""
    text = resources.files("tsuba.soar.rules").joinpath("builtin.yaml").read_text("utf-8")
    return parse_rules(text, "builtin.yaml")
