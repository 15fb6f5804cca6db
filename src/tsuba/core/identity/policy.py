"""The decision itself: a pure function over a compiled per-principal policy snapshot.

Semantics, in order: an unknown or disabled principal is denied; a binding whose
``expires_at`` is at or before the instant of the check is ignored; a rule applies when its
action pattern covers the action, its resource pattern covers the resource and the resource
lies inside the binding's scope (if any); any applying deny denies (deny wins); otherwise
any applying allow allows; otherwise the answer is no (deny by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tsuba.core.errors import InputError
from tsuba.core.identity.patterns import (
    ResourcePattern,
    action_matches,
    compile_pattern,
    validate_action,
    validate_resource,
)


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a ``Z``, the one spelling of instants in tsuba's output."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Rule:
    """One permission of one role, as granted to a principal by one binding."""

    effect: Effect
    action: str
    resource: str
    role: str
    scope: str | None = None
    expires_at: datetime | None = None
    granted_by: str | None = None

    def describe(self) -> str:
        text = f"{self.effect.value} ({self.action}, {self.resource}) from role '{self.role}'"
        if self.scope is not None:
            text += f" within scope '{self.scope}'"
        if self.expires_at is not None:
            text += f" until {iso(self.expires_at)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect.value,
            "action": self.action,
            "resource": self.resource,
            "role": self.role,
            "scope": self.scope,
            "expires_at": iso(self.expires_at),
            "granted_by": self.granted_by,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    matched_rule: Rule | None = None

    def __bool__(self) -> bool:
        return self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "matched_rule": self.matched_rule.to_dict() if self.matched_rule else None,
        }


@dataclass(frozen=True, slots=True)
class BindingView:
    """A role bound to the principal, as the snapshot saw it."""

    role: str
    scope: str | None
    expires_at: datetime | None
    granted_by: str
    granted_at: datetime
    permissions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "scope": self.scope,
            "expires_at": iso(self.expires_at),
            "granted_by": self.granted_by,
            "granted_at": iso(self.granted_at),
            "permissions": self.permissions,
        }


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    resource: ResourcePattern
    scope: ResourcePattern | None


@dataclass(frozen=True)
class PolicySnapshot:
    """Everything needed to decide for one principal, at one policy version."""

    principal: str
    version: int
    exists: bool = True
    disabled: bool = False
    bindings: tuple[BindingView, ...] = ()
    rules: tuple[CompiledRule, ...] = ()
    _by_action: dict[str, tuple[CompiledRule, ...]] = field(default_factory=dict, repr=False)
    _wildcard: tuple[CompiledRule, ...] = field(default=(), repr=False)

    @classmethod
    def build(
        cls,
        principal: str,
        version: int,
        *,
        exists: bool = True,
        disabled: bool = False,
        bindings: Iterable[BindingView] = (),
        rules: Iterable[Rule] = (),
    ) -> PolicySnapshot:
        ordered = sorted(
            rules, key=lambda r: (r.role, r.scope or "", r.action, r.resource, r.effect.value)
        )
        compiled = tuple(
            CompiledRule(
                r,
                compile_pattern(r.resource),
                compile_pattern(r.scope) if r.scope is not None else None,
            )
            for r in ordered
        )
        by_action: dict[str, list[CompiledRule]] = {}
        wildcard: list[CompiledRule] = []
        for c in compiled:
            if c.rule.action == "*" or c.rule.action.endswith(":*"):
                wildcard.append(c)
            else:
                by_action.setdefault(c.rule.action, []).append(c)
        return cls(
            principal=principal,
            version=version,
            exists=exists,
            disabled=disabled,
            bindings=tuple(sorted(bindings, key=lambda b: (b.role, b.scope or ""))),
            rules=compiled,
            _by_action={k: tuple(v) for k, v in by_action.items()},
            _wildcard=tuple(wildcard),
        )

    def candidates(self, action: str) -> Iterable[CompiledRule]:
        """Rules whose action pattern covers ``action`` (exact ones first)."""
        yield from self._by_action.get(action, ())
        for c in self._wildcard:
            if action_matches(c.rule.action, action):
                yield c


def check_instant(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise InputError("the instant of a check must carry a timezone (use UTC)")
    return at


def _expired(rule: Rule, at: datetime) -> bool:
    return rule.expires_at is not None and rule.expires_at <= at


def decide(snapshot: PolicySnapshot, action: str, resource: str, at: datetime) -> Decision:
    """The decision for ``snapshot``'s principal; ``action``/``resource`` must be valid."""
    name = snapshot.principal
    if not snapshot.exists:
        return Decision(False, f"unknown principal '{name}'")
    if snapshot.disabled:
        return Decision(False, f"principal '{name}' is disabled")
    allow: Rule | None = None
    expired: Rule | None = None
    for c in snapshot.candidates(action):
        if not c.resource.matches(resource):
            continue
        if c.scope is not None and not c.scope.matches(resource):
            continue
        rule = c.rule
        if _expired(rule, at):
            if rule.effect is Effect.ALLOW and expired is None:
                expired = rule
            continue
        if rule.effect is Effect.DENY:
            return Decision(
                False,
                f"denied by role '{rule.role}': deny ({rule.action}, {rule.resource}) (deny wins)",
                rule,
            )
        if allow is None:
            allow = rule
    if allow is not None:
        return Decision(
            True, f"allowed by role '{allow.role}': ({allow.action}, {allow.resource})", allow
        )
    if expired is not None:
        return Decision(
            False,
            f"the binding of role '{expired.role}' to '{name}' expired at "
            f"{iso(expired.expires_at)} (it granted ({expired.action}, {expired.resource}))",
        )
    return Decision(False, f"no role of '{name}' grants {action} on {resource}")


def validate_request(action: str, resource: str) -> None:
    validate_action(action)
    validate_resource(resource)


# -- explanation ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consideration:
    """One rule looked at, whether it applied, and why (not)."""

    rule: Rule
    applies: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.to_dict(), "applies": self.applies, "why": self.why}


@dataclass(frozen=True)
class Explanation:
    principal: str
    action: str
    resource: str
    at: datetime
    decision: Decision
    bindings: tuple[BindingView, ...]
    considered: tuple[Consideration, ...]
    remedy: str | None
    policy_version: int
    principal_exists: bool = True
    principal_disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "principal_exists": self.principal_exists,
            "principal_disabled": self.principal_disabled,
            "action": self.action,
            "resource": self.resource,
            "at": iso(self.at),
            "policy_version": self.policy_version,
            "decision": self.decision.to_dict(),
            "bindings": [b.to_dict() for b in self.bindings],
            "considered": [c.to_dict() for c in self.considered],
            "remedy": self.remedy,
        }

    def lines(self) -> list[str]:
        """The explanation for people, one statement a line."""
        verdict = "yes" if self.decision.allowed else "no"
        out = [
            f"may {self.principal} do {self.action} on {self.resource}? {verdict}",
            f"  because: {self.decision.reason}",
        ]
        if self.bindings:
            out.append(f"roles bound to {self.principal}:")
            for b in self.bindings:
                extra = f", scope {b.scope}" if b.scope is not None else ""
                if b.expires_at is not None:
                    state = "expired" if b.expires_at <= self.at else "expires"
                    extra += f", {state} {iso(b.expires_at)}"
                out.append(
                    f"  - {b.role} ({b.permissions} permission(s){extra}; "
                    f"granted by {b.granted_by} at {iso(b.granted_at)})"
                )
        elif self.principal_exists:
            out.append(f"no roles are bound to {self.principal}")
        if self.considered:
            out.append("permissions considered:")
            for c in self.considered:
                mark = "applies" if c.applies else "skip"
                out.append(f"  [{mark}] {c.rule.describe()}: {c.why}")
        if self.remedy:
            out.append(f"to change this: {self.remedy}")
        return out


def explain(snapshot: PolicySnapshot, action: str, resource: str, at: datetime) -> Explanation:
    """Every rule considered, why each did or did not apply, and for a denial what would."""
    decision = decide(snapshot, action, resource, at)
    considered = tuple(_consider(c, action, resource, at) for c in snapshot.rules)
    return Explanation(
        principal=snapshot.principal,
        action=action,
        resource=resource,
        at=at,
        decision=decision,
        bindings=snapshot.bindings,
        considered=considered,
        remedy=None if decision.allowed else _remedy(snapshot, decision, action, resource),
        policy_version=snapshot.version,
        principal_exists=snapshot.exists,
        principal_disabled=snapshot.disabled,
    )


def _consider(c: CompiledRule, action: str, resource: str, at: datetime) -> Consideration:
    rule = c.rule
    if not action_matches(rule.action, action):
        return Consideration(rule, False, f"action {action} is not covered by '{rule.action}'")
    if not c.resource.matches(resource):
        return Consideration(rule, False, f"resource {resource} does not match '{rule.resource}'")
    if c.scope is not None and not c.scope.matches(resource):
        return Consideration(
            rule, False, f"resource {resource} is outside the binding's scope '{rule.scope}'"
        )
    if _expired(rule, at):
        return Consideration(
            rule, False, f"matches, but the binding expired at {iso(rule.expires_at)}"
        )
    if rule.effect is Effect.DENY:
        return Consideration(rule, True, "matches and denies (deny wins over every allow)")
    return Consideration(rule, True, "matches and allows")


def _remedy(snapshot: PolicySnapshot, decision: Decision, action: str, resource: str) -> str:
    name = snapshot.principal
    grant = f"a role with permission ({action}, {resource}) bound to {name}"
    if not snapshot.exists:
        return f"principal '{name}' does not exist; creating it and binding {grant} would allow it"
    if snapshot.disabled:
        return f"principal '{name}' is disabled; enabling it would let its roles apply again"
    rule = decision.matched_rule
    if rule is not None and rule.effect is Effect.DENY:
        return (
            f"the deny permission ({rule.action}, {rule.resource}) of role '{rule.role}' bound "
            f"to {name} blocks it and deny wins over every allow; only revoking that "
            f"permission or unbinding role '{rule.role}' would allow it"
        )
    if decision.reason.startswith("the binding of role"):
        expired = next(
            c.rule
            for c in snapshot.candidates(action)
            if c.rule.effect is Effect.ALLOW
            and c.rule.expires_at is not None
            and c.resource.matches(resource)
            and (c.scope is None or c.scope.matches(resource))
        )
        return (
            f"the binding of role '{expired.role}' to {name} expired at "
            f"{iso(expired.expires_at)}; binding it again would allow it"
        )
    return f"no role of '{name}' grants {action} on {resource}; {grant} would"
