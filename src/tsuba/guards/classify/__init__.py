"""Data classification: Public, Internal, Confidential or Restricted, with the reasons.

The level is the highest that any rule reaches: an explicit label in a record or in the text
("CONFIDENTIAL", "Streng vertraulich", "社外秘"), the entity types found (a card number is
Restricted, an e-mail address Confidential), a count of findings (a list of many people is
more sensitive than one name), and custom keyword rules.  The mapping is configuration:
:class:`Policy` can be built from a dictionary.  Retention and logging policy elsewhere key
on the level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from tsuba.core.errors import ConfigError
from tsuba.guards import pii
from tsuba.guards import secrets as secret_scan
from tsuba.guards.pii.national import NATIONAL_IDS
from tsuba.guards.types import Finding


class Level(IntEnum):
    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, value: str) -> Level:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ConfigError(
                f"unknown classification level '{value}': use Public, Internal, Confidential "
                "or Restricted"
            ) from None


_RESTRICTED_TYPES = {
    "SECRET", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "US_PASSPORT", "US_DRIVER_LICENSE",
    "UK_NHS", "MEDICAL_LICENSE", "CRYPTO", *(spec.entity for spec in NATIONAL_IDS),
}
_CONFIDENTIAL_TYPES = {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "ADDRESS", "DATE_TIME"}
_INTERNAL_TYPES = {"IP_ADDRESS", "LOCATION", "URL"}

DEFAULT_LABELS: dict[str, Level] = {
    # Marking words and phrases in the languages tsuba reads, matched case-insensitively.
    "restricted": Level.RESTRICTED,
    "strictly confidential": Level.RESTRICTED,
    "top secret": Level.RESTRICTED,
    "streng vertraulich": Level.RESTRICTED,
    "strictement confidentiel": Level.RESTRICTED,
    "estrictamente confidencial": Level.RESTRICTED,
    "極秘": Level.RESTRICTED,
    "confidential": Level.CONFIDENTIAL,
    "vertraulich": Level.CONFIDENTIAL,
    "confidentiel": Level.CONFIDENTIAL,
    "confidencial": Level.CONFIDENTIAL,
    "riservato": Level.CONFIDENTIAL,
    "vertrouwelijk": Level.CONFIDENTIAL,
    "社外秘": Level.CONFIDENTIAL,
    "機密": Level.CONFIDENTIAL,
    "internal use only": Level.INTERNAL,
    "internal only": Level.INTERNAL,
    "nur für den internen gebrauch": Level.INTERNAL,
    "usage interne": Level.INTERNAL,
    "uso interno": Level.INTERNAL,
    "社内限り": Level.INTERNAL,
}
RECORD_LABEL_KEYS = ("classification", "label", "labels", "sensitivity", "data_classification")


@dataclass(frozen=True)
class Classification:
    level: Level
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.label,
            "reasons": list(self.reasons),
            "entities": sorted({f.entity_type for f in self.findings}),
        }


@dataclass
class Policy:
    """Which entity types, labels, counts and keywords raise the level."""

    entity_levels: dict[str, Level] = field(default_factory=lambda: {
        **dict.fromkeys(_RESTRICTED_TYPES, Level.RESTRICTED),
        **dict.fromkeys(_CONFIDENTIAL_TYPES, Level.CONFIDENTIAL),
        **dict.fromkeys(_INTERNAL_TYPES, Level.INTERNAL),
    })
    labels: dict[str, Level] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    keywords: dict[str, Level] = field(default_factory=dict)  # regex -> level
    # Many personal findings in one text (a list of customers) make it Restricted.
    bulk_threshold: int = 10
    bulk_level: Level = Level.RESTRICTED
    default: Level = Level.PUBLIC
    min_score: float = 0.5
    _label_re: re.Pattern[str] | None = field(init=False, repr=False, default=None)
    _keyword_res: list[tuple[re.Pattern[str], Level, str]] = field(
        init=False, repr=False, default_factory=list
    )

    def __post_init__(self) -> None:
        if self.labels:
            alts = "|".join(re.escape(k) for k in sorted(self.labels, key=len, reverse=True))
            self._label_re = re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)
        self._keyword_res = []
        for pattern, level in self.keywords.items():
            try:
                self._keyword_res.append((re.compile(pattern, re.IGNORECASE), level, pattern))
            except re.error as exc:
                raise ConfigError(f"classification keyword rule '{pattern}': {exc}") from None

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Policy:
        """A policy from configuration; unknown keys and levels are errors."""
        known = {"entity_levels", "labels", "keywords", "bulk_threshold", "bulk_level",
                 "default", "min_score"}
        extra = set(data) - known
        if extra:
            raise ConfigError(f"classification policy: unknown key(s) {', '.join(sorted(extra))}")
        base = cls()
        entity_levels = dict(base.entity_levels)
        entity_levels.update({k: Level.parse(v) for k, v in data.get("entity_levels", {}).items()})
        labels = dict(base.labels)
        labels.update({k.lower(): Level.parse(v) for k, v in data.get("labels", {}).items()})
        return cls(
            entity_levels=entity_levels,
            labels=labels,
            keywords={k: Level.parse(v) for k, v in data.get("keywords", {}).items()},
            bulk_threshold=int(data.get("bulk_threshold", base.bulk_threshold)),
            bulk_level=Level.parse(data.get("bulk_level", base.bulk_level.name)),
            default=Level.parse(data.get("default", base.default.name)),
            min_score=float(data.get("min_score", base.min_score)),
        )


DEFAULT_POLICY = Policy()


def classify(  # noqa: PLR0912 - one branch per kind of evidence reads best
    item: str | Mapping[str, Any],
    *,
    policy: Policy | None = None,
    language: str = "en",
    findings: Sequence[Finding] | None = None,
) -> Classification:
    """The level of a text or a record (a mapping whose label keys and values are read)."""
    pol = policy or DEFAULT_POLICY
    level = pol.default
    reasons: list[str] = []

    def raise_to(new: Level, why: str) -> None:
        nonlocal level
        level = max(level, new)
        reasons.append(f"{new.label}: {why}")

    if isinstance(item, Mapping):
        for key in RECORD_LABEL_KEYS:
            if key in item:
                for value in _as_list(item[key]):
                    lvl = _level_of_label(str(value), pol)
                    if lvl is not None:
                        raise_to(lvl, f"record field '{key}' says {value!r}")
        text = _record_text(item)
    else:
        text = item
    if pol._label_re is not None:
        for marking in sorted({m.group().lower() for m in pol._label_re.finditer(text)}):
            raise_to(pol.labels[marking], f"marked '{marking}'")
    for regex, lvl, pattern in pol._keyword_res:
        if regex.search(text):
            raise_to(lvl, f"matches rule '{pattern}'")
    if findings is None:
        findings = [
            *pii.analyze(text, language=language, min_score=pol.min_score),
            *secret_scan.scan(text, min_score=pol.min_score),
        ]
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
    for entity, n in sorted(counts.items()):
        lvl = pol.entity_levels.get(entity)
        if lvl is not None and lvl > Level.PUBLIC:
            raise_to(lvl, f"{n} {entity} finding{'s' if n > 1 else ''}")
    personal = sum(n for e, n in counts.items()
                   if pol.entity_levels.get(e, Level.PUBLIC) >= Level.CONFIDENTIAL)
    if pol.bulk_threshold and personal >= pol.bulk_threshold:
        raise_to(pol.bulk_level, f"{personal} personal-data findings in one item")
    reasons.sort(key=lambda r: -Level.parse(r.split(":", 1)[0]))
    return Classification(level, tuple(reasons), tuple(findings))


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list | tuple | set) else [value]


def _level_of_label(value: str, pol: Policy) -> Level | None:
    try:
        return Level.parse(value)
    except ConfigError:
        return pol.labels.get(value.strip().lower())


def _record_text(record: Mapping[str, Any]) -> str:
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if k not in RECORD_LABEL_KEYS:
                    walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif value is not None and not isinstance(value, bool):
            parts.append(json.dumps(value, default=str))

    walk(record)
    return "\n".join(parts)


__all__ = ["DEFAULT_POLICY", "Classification", "Level", "Policy", "classify"]
