"""The rule language: the built-in pack's promises, and refusals of bad rule files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.soar.rules import builtin_rules, load_rules, parse_rules

THREATS = {
    "credential stuffing": "tsuba.auth.credential_stuffing",
    "key from a new network": "tsuba.auth.key_new_network",
    "quota exhaustion": "tsuba.limits.quota_exhaustion",
    "burst abuse": "tsuba.limits.burst_abuse",
    "prompt injection": "tsuba.guards.prompt_injection_repeated",
    "pii or secrets in outputs": "tsuba.guards.sensitive_output",
    "model extraction": "tsuba.models.extraction_volume",
    "unsigned or quarantined model": "tsuba.models.serve_refused",
    "audit verification failure": "tsuba.audit.verification_failed",
    "agent impersonation": "tsuba.society.agent_impersonation",
}

GOOD = {
    "id": "custom.one",
    "title": "One",
    "kind": "threshold",
    "severity": "high",
    "match": {"class": "authentication", "outcome": "failure"},
    "group_by": ["src_ip"],
    "threshold": {"count": 3, "window": "5m"},
    "owasp_llm": ["LLM10"],
}


def test_pack_covers_every_threat_with_framework_ids() -> None:
    rules = {r.id: r for r in builtin_rules()}
    assert len(rules) == len(builtin_rules())  # ids unique
    for threat, rule_id in THREATS.items():
        assert rule_id in rules, threat
    for rule in rules.values():
        spec = rule.spec
        assert spec.owasp_llm or spec.mitre_atlas or spec.mitre_attack, rule.id
        assert spec.description.strip(), rule.id
    llm_rules = [r for r in rules.values() if r.spec.tags != ["audit"] and
                 r.spec.tags != ["bus"]]
    assert all(r.spec.owasp_llm and r.spec.mitre_atlas for r in llm_rules)


def test_rule_serialises_durations_as_seconds() -> None:
    rule = parse_rules(yaml.safe_dump(GOOD))[0]
    data = rule.to_dict()
    assert data["threshold"] == {"count": 3, "window": "300s"}
    assert data["severity"] == "high"


def _bad(**changes: object) -> str:
    rule = {**GOOD, **changes}
    return yaml.safe_dump({"rules": [{k: v for k, v in rule.items() if v is not None}]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("- just\n- a list\n", "expected 'rules:'"),
        ("rules: []\n", "non-empty list"),
        ("rules: [1]\n", "must be a mapping"),
        ("rules: []\nother: 1\n", "unknown top-level key"),
        (_bad(owasp_llm=["LLM11"]), "not an OWASP LLM Top 10"),
        (_bad(owasp_llm=[], mitre_atlas=["ATLAS-1"]), "not a MITRE ATLAS technique"),
        (_bad(owasp_llm=[]), "at least one owasp_llm"),
        (_bad(severity="dire"), "unknown severity"),
        (_bad(kind="magic"), "kind"),
        (_bad(threshold=None), "needs 'threshold'"),
        (_bad(threshold={"count": 0, "window": "5m"}), "threshold.count"),
        (_bad(threshold={"count": 3, "window": "soon"}), "invalid duration"),
        (_bad(threshold={"count": 3, "window": -5}), "longer than zero"),
        (_bad(match={"message": {"regex": "("}}), "invalid regex"),
        (_bad(match={"message": {"like": "x"}}), "unknown operator 'like'"),
        (_bad(match={"remaining": {"lte": "lots"}}), "comparison needs a number"),
        (_bad(match={"actor": {"in": "alice"}}), "'in' needs a list"),
        (_bad(match={}), "non-empty mapping"),
        (_bad(match={"any": []}), "non-empty list"),
        (_bad(match={"attributes.": 1}), "not a field name"),
        (_bad(id="Bad Id!"), "id"),
        (_bad(surprise=1), "surprise"),
        (_bad(kind="sequence", steps=[{"match": {"class": "authentication"}}],
              window="5m"), "at least two steps"),
        (_bad(kind="new_value", group_by=[], new_value={"fields": ["src_net"]}),
         "needs 'group_by'"),
    ],
)
def test_bad_rules_are_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        parse_rules(text, "custom.yaml")


def test_error_names_the_rule_and_the_file() -> None:
    with pytest.raises(InputError, match=r"^custom\.yaml: rule 'custom\.one': severity"):
        parse_rules(_bad(severity="dire"), "custom.yaml")


def test_duplicate_ids_are_refused() -> None:
    text = yaml.safe_dump({"rules": [GOOD, GOOD]})
    with pytest.raises(InputError, match="duplicate rule id"):
        parse_rules(text)


def test_single_rule_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(GOOD), encoding="utf-8")
    assert [r.id for r in load_rules(path)] == ["custom.one"]
    with pytest.raises(InputError, match="does not exist"):
        load_rules(tmp_path / "nope.yaml")
    path.write_bytes(b"\xff\xfe rules")
    with pytest.raises(InputError, match="cannot read rule file"):
        load_rules(path)


_yamlish = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["id", "title", "kind", "severity", "match", "group_by", "threshold",
                             "steps", "window", "new_value", "owasp_llm", "count", "class",
                             "any", "not", "regex", "in", "rules", "fields"]),
            inner, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_yamlish)
def test_arbitrary_documents_load_or_fail_cleanly(doc: object) -> None:
    try:
        rules = parse_rules(yaml.safe_dump(doc))
    except InputError as exc:
        assert exc.message
    else:
        assert rules and all(r.id for r in rules)
