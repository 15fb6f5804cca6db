"""What a scan found, on a fixed severity scale, and how it is written out (text, JSON, SARIF).

Severities are fixed so that a threshold (``--fail-on``) means the same thing across formats:
``critical`` is a known way to run code on load, ``high`` is a path to run code that cannot be
shown safe, ``medium`` is something outside the allow-list or that could not be fully parsed
(fail closed: never clean), ``low`` is odd but inert, ``info`` is a fact worth recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from tsuba import __version__

TOOL_NAME = "tsuba"
TOOL_URI = "https://github.com/tsuba-ai/tsuba"


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}: use one of {names}") from None

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def sarif_level(self) -> str:
        if self >= Severity.HIGH:
            return "error"
        if self is Severity.MEDIUM:
            return "warning"
        return "note"

    @property
    def security_score(self) -> str:
        """GitHub code scanning reads ``security-severity`` as a CVSS-like number."""
        return {0: "0.0", 1: "2.0", 2: "5.0", 3: "8.0", 4: "9.5"}[int(self)]


@dataclass(frozen=True)
class Finding:
    """One thing found at one place.  ``location`` names the file and, for content inside
    containers, the member chain (``model.pt!archive/data.pkl``)."""

    rule: str
    severity: Severity
    message: str
    location: str
    offset: int | None = None
    detail: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.label,
            "message": self.message,
            "location": self.location,
            "offset": self.offset,
            "detail": dict(self.detail),
        }


@dataclass
class FileResult:
    """One top-level file: what it was taken for and what was found in it."""

    path: str
    format: str
    size: int
    findings: list[Finding] = field(default_factory=list)
    unreadable: bool = False

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        worst = self.max_severity
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "unreadable": self.unreadable,
            "max_severity": worst.label if worst is not None else None,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class Report:
    """The result of one scan over one or more paths."""

    files: list[FileResult] = field(default_factory=list)
    tool_version: str = __version__

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.files for f in r.findings]

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def unreadable(self) -> list[str]:
        return [r.path for r in self.files if r.unreadable]

    @property
    def bytes_scanned(self) -> int:
        return sum(r.size for r in self.files)

    def unsafe(self, threshold: Severity = Severity.MEDIUM) -> bool:
        """Findings at or above ``threshold`` in a file that could be read."""
        return any(f.severity >= threshold for r in self.files if not r.unreadable
                   for f in r.findings)

    def exit_code(self, threshold: Severity = Severity.MEDIUM) -> int:
        """0 clean, 1 findings at or above ``threshold``, 2 when a file could not be read."""
        if self.unsafe(threshold):
            return 1
        return 2 if self.unreadable else 0

    def merge(self, other: Report) -> None:
        self.files.extend(other.files)

    def counts(self) -> dict[str, int]:
        counts = {s.label: 0 for s in Severity}
        for f in self.findings:
            counts[f.severity.label] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        worst = self.max_severity
        return {
            "tool": {"name": TOOL_NAME, "version": self.tool_version},
            "summary": {
                "files": len(self.files),
                "bytes": self.bytes_scanned,
                "max_severity": worst.label if worst is not None else None,
                "counts": self.counts(),
                "unreadable": self.unreadable,
            },
            "files": [r.to_dict() for r in self.files],
        }

    def to_text(self, threshold: Severity = Severity.INFO) -> str:
        lines: list[str] = []
        for result in self.files:
            shown = [f for f in result.findings if f.severity >= threshold]
            worst = result.max_severity
            verdict = "clean" if worst is None or worst < Severity.MEDIUM else worst.label
            if result.unreadable:
                verdict = "unreadable"
            lines.append(f"{result.path}  [{result.format}]  {verdict}")
            for f in sorted(shown, key=lambda f: (-f.severity, f.location, f.offset or 0)):
                where = f.location + (f"@{f.offset}" if f.offset is not None else "")
                lines.append(f"  {f.severity.label:<8} {f.rule}  {where}: {f.message}")
        counts = self.counts()
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines.append(f"{len(self.files)} file(s) scanned; findings: {summary or 'none'}")
        return "\n".join(lines)

    def to_sarif(self) -> dict[str, Any]:
        """A SARIF 2.1.0 log with one run; rules are the distinct rule ids found."""
        rules: dict[str, dict[str, Any]] = {}
        results: list[dict[str, Any]] = []
        for finding in self.findings:
            rule = rules.setdefault(
                finding.rule,
                {
                    "id": finding.rule,
                    "name": finding.rule.replace(".", "_").replace("-", "_"),
                    "shortDescription": {"text": _RULE_TEXT.get(finding.rule, finding.rule)},
                    "defaultConfiguration": {"level": finding.severity.sarif_level},
                    "properties": {
                        "security-severity": finding.severity.security_score,
                        "tags": ["security", "model-supply-chain"],
                    },
                },
            )
            if float(finding.severity.security_score) > float(
                rule["properties"]["security-severity"]
            ):
                rule["properties"]["security-severity"] = finding.severity.security_score
                rule["defaultConfiguration"]["level"] = finding.severity.sarif_level
            file_path, _, member = finding.location.partition("!")
            physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(file_path)}}
            if finding.offset is not None and not member:
                physical["region"] = {"byteOffset": finding.offset}
            result: dict[str, Any] = {
                "ruleId": finding.rule,
                "level": finding.severity.sarif_level,
                "message": {"text": finding.message},
                "locations": [{"physicalLocation": physical}],
                "properties": {"severity": finding.severity.label, **finding.detail},
            }
            if member:
                result["locations"][0]["logicalLocations"] = [
                    {"fullyQualifiedName": member, "kind": "member"}
                ]
                if finding.offset is not None:
                    result["properties"]["memberOffset"] = finding.offset
            results.append(result)
        return {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": TOOL_NAME,
                            "version": self.tool_version,
                            "informationUri": TOOL_URI,
                            "rules": list(rules.values()),
                        }
                    },
                    "results": results,
                }
            ],
        }


def _uri(path: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415 (only SARIF output needs it)

    return quote(path.replace("\\", "/"), safe="/:.-_~")


_RULE_TEXT: dict[str, str] = {
    "pickle.dangerous-import": "Pickle imports a callable known to run code or touch the system",
    "pickle.unknown-import": "Pickle imports a global outside the allow-list",
    "pickle.computed-call": "Pickle calls a value that is not an allow-listed import",
    "pickle.unresolved-import": "Pickle builds an import name that cannot be resolved statically",
    "pickle.extension-code": "Pickle imports through the copyreg extension registry",
    "pickle.build-on-global": "Pickle changes the state of an imported module or class",
    "pickle.malformed": "Pickle stream cannot be fully parsed; the loader may run opcodes first",
    "pickle.trailing-data": "Data after the end of a pickle stream",
    "archive.path-traversal": "Archive member escapes the extraction directory",
    "archive.link": "Archive member is a link",
    "archive.bomb": "Archive expands far beyond its size",
    "archive.malformed": "Archive cannot be fully parsed the way its loaders read it",
    "archive.parser-mismatch": "Archive reads differently in different zip readers",
    "archive.unsupported": "Archive or compression method that tsuba cannot open",
    "format.unparseable": "File could not be fully parsed",
    "format.unreadable": "File could not be read",
}
