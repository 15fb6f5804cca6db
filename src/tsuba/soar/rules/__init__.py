"""Declarative detection rules over the security event stream."""

from tsuba.soar.rules.engine import Alert, DetectionEngine
from tsuba.soar.rules.spec import Rule, RuleSpec, builtin_rules, load_rules, parse_rules

__all__ = ["Alert", "DetectionEngine", "Rule", "RuleSpec", "builtin_rules", "load_rules",
           "parse_rules"]
