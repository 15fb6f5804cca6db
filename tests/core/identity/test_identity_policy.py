"""The pure decision over snapshots: deny by default, deny wins, expiry, scope, explanation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.core.identity.patterns import action_matches, compile_pattern
from tsuba.core.identity.policy import (
    BindingView,
    Effect,
    PolicySnapshot,
    Rule,
    check_instant,
    decide,
    explain,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALLOW, DENY = Effect.ALLOW, Effect.DENY


def snap(*rules: Rule, exists: bool = True, disabled: bool = False) -> PolicySnapshot:
    roles = sorted({(r.role, r.scope, r.expires_at) for r in rules}, key=str)
    views = [
        BindingView(role, scope, exp, "admin", T0 - timedelta(days=1), 1)
        for role, scope, exp in roles
    ]
    return PolicySnapshot.build(
        "alice", 7, exists=exists, disabled=disabled, bindings=views, rules=rules
    )


def rule(
    action: str,
    resource: str,
    effect: Effect = ALLOW,
    role: str = "reader",
    scope: str | None = None,
    expires_at: datetime | None = None,
) -> Rule:
    return Rule(effect, action, resource, role, scope, expires_at, "admin")


def test_no_rules_is_denied_by_default() -> None:
    d = decide(snap(), "model:invoke", "model/demo", T0)
    assert not d.allowed and d.matched_rule is None
    assert d.reason == "no role of 'alice' grants model:invoke on model/demo"


def test_unknown_principal_is_denied_with_reason() -> None:
    d = decide(snap(exists=False), "model:invoke", "model/demo", T0)
    assert not d.allowed and d.reason == "unknown principal 'alice'"


def test_disabled_principal_is_denied_even_with_matching_allow() -> None:
    d = decide(snap(rule("*", "**"), disabled=True), "model:invoke", "model/demo", T0)
    assert not d.allowed and d.reason == "principal 'alice' is disabled"


@pytest.mark.parametrize(
    ("pattern", "resource", "allowed"),
    [
        ("model/demo", "model/demo", True),
        ("model/demo", "model/demo-restricted", False),
        ("model/*", "model/demo", True),
        ("model/*", "model/demo/v2", False),
        ("model/**", "model/demo/v2", True),
        ("dataset/finance/**", "dataset/finance/q3", True),
        ("dataset/finance/**", "dataset/hr", False),
    ],
)
def test_resource_patterns_decide(pattern: str, resource: str, allowed: bool) -> None:
    d = decide(snap(rule("model:invoke", pattern)), "model:invoke", resource, T0)
    assert d.allowed is allowed
    if allowed:
        assert d.matched_rule == rule("model:invoke", pattern)
        assert d.reason == f"allowed by role 'reader': (model:invoke, {pattern})"


def test_action_must_match_too() -> None:
    s = snap(rule("audit:read", "**"), rule("model:*", "model/a"))
    assert not decide(s, "audit:write", "x", T0).allowed
    assert decide(s, "audit:read", "x", T0).allowed
    assert decide(s, "model:invoke", "model/a", T0).allowed
    assert not decide(s, "model:invoke", "model/b", T0).allowed


def test_deny_wins_over_allow_from_any_role() -> None:
    s = snap(
        rule("*", "**", role="admin"),
        rule("model:invoke", "model/secret", DENY, role="zz-guard"),
    )
    d = decide(s, "model:invoke", "model/secret", T0)
    assert not d.allowed
    assert d.matched_rule is not None and d.matched_rule.effect is DENY
    assert d.reason == "denied by role 'zz-guard': deny (model:invoke, model/secret) (deny wins)"
    assert decide(s, "model:invoke", "model/public", T0).allowed


def test_expiry_is_exclusive_at_the_given_instant() -> None:
    exp = T0 + timedelta(hours=1)
    s = snap(rule("model:invoke", "model/demo", expires_at=exp))
    assert decide(s, "model:invoke", "model/demo", exp - timedelta(microseconds=1)).allowed
    at_expiry = decide(s, "model:invoke", "model/demo", exp)
    assert not at_expiry.allowed
    assert "expired at 2026-06-01T13:00:00Z" in at_expiry.reason
    assert "binding of role 'reader'" in at_expiry.reason
    assert not decide(s, "model:invoke", "model/demo", exp + timedelta(days=1)).allowed


def test_expired_deny_no_longer_blocks() -> None:
    s = snap(
        rule("model:invoke", "model/*"),
        rule("model:invoke", "model/x", DENY, role="block", expires_at=T0),
    )
    assert not decide(s, "model:invoke", "model/x", T0 - timedelta(seconds=1)).allowed
    assert decide(s, "model:invoke", "model/x", T0).allowed


def test_expired_reason_only_when_expiry_is_why() -> None:
    s = snap(rule("model:invoke", "model/a", expires_at=T0))
    d = decide(s, "model:invoke", "model/b", T0 + timedelta(days=1))
    assert "expired" not in d.reason


def test_scope_limits_where_a_binding_applies() -> None:
    s = snap(rule("dataset:read", "dataset/**", scope="dataset/finance/**"))
    assert decide(s, "dataset:read", "dataset/finance/q3", T0).allowed
    assert not decide(s, "dataset:read", "dataset/hr/q3", T0).allowed


def test_scoped_deny_only_denies_inside_its_scope() -> None:
    s = snap(
        rule("dataset:read", "dataset/**", role="reader"),
        rule("dataset:read", "dataset/**", DENY, role="block", scope="dataset/hr/**"),
    )
    assert decide(s, "dataset:read", "dataset/finance/q3", T0).allowed
    assert not decide(s, "dataset:read", "dataset/hr/salaries", T0).allowed


def test_naive_instant_is_rejected() -> None:
    with pytest.raises(InputError, match="timezone"):
        check_instant(datetime(2026, 1, 1))
    other = datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=3)))
    assert check_instant(other) == datetime(2026, 1, 1, 0, tzinfo=UTC)


# -- property: the decision is exactly "some active allow applies and no active deny does" --

actions = st.sampled_from(["model:invoke", "model:read", "audit:read"])
action_patterns = st.sampled_from(["*", "model:*", "model:invoke", "audit:read"])
res_patterns = st.sampled_from(["**", "model/*", "model/a", "model/**", "dataset/**", "*/a"])
resources = st.sampled_from(["model/a", "model/b", "model/a/v1", "dataset/x", "x/a"])
scopes = st.sampled_from([None, "model/**", "*/a"])
expiries = st.sampled_from([None, T0 - timedelta(seconds=1), T0, T0 + timedelta(seconds=1)])
rules_st = st.lists(
    st.builds(
        Rule,
        st.sampled_from([ALLOW, DENY]),
        action_patterns,
        res_patterns,
        st.sampled_from(["r1", "r2", "r3"]),
        scopes,
        expiries,
        st.just("admin"),
    ),
    max_size=8,
)


def _applies(r: Rule, action: str, resource: str) -> bool:
    return (
        action_matches(r.action, action)
        and compile_pattern(r.resource).matches(resource)
        and (r.scope is None or compile_pattern(r.scope).matches(resource))
        and (r.expires_at is None or r.expires_at > T0)
    )


@given(rules_st, actions, resources)
def test_decision_is_deny_wins_over_active_applying_rules(
    rules: list[Rule], action: str, resource: str
) -> None:
    d = decide(snap(*rules), action, resource, T0)
    applying = [r for r in rules if _applies(r, action, resource)]
    expected = any(r.effect is ALLOW for r in applying) and not any(
        r.effect is DENY for r in applying
    )
    assert d.allowed is expected
    if d.matched_rule is not None:
        assert d.matched_rule in applying
        assert d.matched_rule.effect is (ALLOW if expected else DENY)
    # Order of rules never changes the answer.
    assert decide(snap(*reversed(rules)), action, resource, T0).allowed is expected


@given(rules_st, actions, resources)
def test_explanation_agrees_with_decision_and_covers_every_rule(
    rules: list[Rule], action: str, resource: str
) -> None:
    e = explain(snap(*rules), action, resource, T0)
    assert e.decision == decide(snap(*rules), action, resource, T0)
    assert len(e.considered) == len(rules)
    for c in e.considered:
        assert c.applies is _applies(c.rule, action, resource)
        assert c.why
    assert (e.remedy is None) is e.decision.allowed


# -- explanation content -------------------------------------------------------------------


def test_explanation_of_a_default_denial_says_what_grant_would_allow() -> None:
    s = snap(rule("model:invoke", "model/demo"), rule("audit:read", "**", role="auditor"))
    e = explain(s, "model:invoke", "model/demo-restricted", T0)
    assert not e.decision.allowed
    assert e.remedy == (
        "no role of 'alice' grants model:invoke on model/demo-restricted; a role with "
        "permission (model:invoke, model/demo-restricted) bound to alice would"
    )
    whys = {c.rule.resource: c.why for c in e.considered}
    assert whys["model/demo"] == "resource model/demo-restricted does not match 'model/demo'"
    assert whys["**"] == "action model:invoke is not covered by 'audit:read'"
    text = "\n".join(e.lines())
    assert text.startswith("may alice do model:invoke on model/demo-restricted? no")
    assert "roles bound to alice:" in text and "- auditor" in text and "- reader" in text
    assert "[skip] allow (model:invoke, model/demo) from role 'reader'" in text


def test_explanation_of_allow_names_the_rule_and_has_no_remedy() -> None:
    e = explain(snap(rule("model:invoke", "model/*")), "model:invoke", "model/demo", T0)
    assert e.decision.allowed and e.remedy is None
    assert e.considered[0].applies and e.considered[0].why == "matches and allows"
    assert e.lines()[0] == "may alice do model:invoke on model/demo? yes"


def test_explanation_of_deny_says_only_revoking_or_unbinding_helps() -> None:
    s = snap(rule("*", "**"), rule("model:invoke", "model/x", DENY, role="block"))
    e = explain(s, "model:invoke", "model/x", T0)
    assert e.remedy is not None
    assert "deny permission (model:invoke, model/x) of role 'block'" in e.remedy
    assert "unbinding role 'block'" in e.remedy
    assert [c.why for c in e.considered if c.rule.effect is DENY] == [
        "matches and denies (deny wins over every allow)"
    ]


def test_explanation_of_expired_binding_suggests_binding_again() -> None:
    s = snap(rule("model:invoke", "model/x", expires_at=T0))
    e = explain(s, "model:invoke", "model/x", T0)
    assert e.remedy == (
        "the binding of role 'reader' to alice expired at 2026-06-01T12:00:00Z; binding it "
        "again would allow it"
    )
    assert e.considered[0].why == "matches, but the binding expired at 2026-06-01T12:00:00Z"
    assert "expired 2026-06-01T12:00:00Z" in "\n".join(e.lines())


def test_explanation_of_scope_miss() -> None:
    s = snap(rule("dataset:read", "dataset/**", scope="dataset/finance/**"))
    e = explain(s, "dataset:read", "dataset/hr/x", T0)
    assert e.considered[0].why == (
        "resource dataset/hr/x is outside the binding's scope 'dataset/finance/**'"
    )


def test_explanation_for_unknown_and_disabled_principals() -> None:
    unknown = explain(snap(exists=False), "model:invoke", "model/x", T0)
    assert not unknown.principal_exists
    assert unknown.remedy is not None and "does not exist" in unknown.remedy
    assert "no roles are bound" not in "\n".join(unknown.lines())
    disabled = explain(snap(rule("*", "**"), disabled=True), "model:invoke", "model/x", T0)
    assert disabled.principal_disabled
    assert disabled.remedy == (
        "principal 'alice' is disabled; enabling it would let its roles apply again"
    )
    data = disabled.to_dict()
    assert data["decision"]["allowed"] is False and data["policy_version"] == 7
    assert data["considered"][0]["rule"]["resource"] == "**"
