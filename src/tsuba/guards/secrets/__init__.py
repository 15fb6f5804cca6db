"""Secrets in text: provider keys and tokens, private keys, JWTs, credentials in URLs.

Every finding's ``entity_type`` is ``SECRET`` and its ``recognizer`` names the kind
(``aws_access_key_id``, ``github_token``, ...), so policy can act on secrets as one class
and people can see which one.  Provider formats with a fixed prefix are reported on their
own; generic high-entropy strings only next to a word such as "token" or "password".

Most text holds no secret, so each pattern names literals that every one of its matches
contains (a provider prefix, ``://``, a keyword); a pattern runs only on text that holds
one of them.  Plain substring tests cost far less than the patterns, whose leading
look-behinds keep the regular-expression engine from skipping ahead on its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from tsuba.guards.types import Finding, ScanResult, max_score, resolve_overlaps

ENTITY = "SECRET"


@dataclass(frozen=True)
class SecretRule:
    kind: str
    pattern: re.Pattern[str]
    score: float
    description: str
    group: int = 0
    min_entropy: float = 0.0  # bits per character of the secret part, when it is random
    # Every match contains one of these (none: the pattern always runs); ``folded``: the
    # pattern ignores case, so they are looked up in the case-folded text.
    literals: tuple[str, ...] = ()
    folded: bool = False


def _r(p: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(p, flags)


_END = r"(?![A-Za-z0-9_\-])"
_BEGIN = r"(?<![A-Za-z0-9_\-])"

_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA",
                 "AROA", "ASCA")
_GITLAB_PREFIXES = ("glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glft-", "glimt-", "glagent-",
                    "gloas-")

RULES: tuple[SecretRule, ...] = (
    SecretRule("aws_access_key_id",
               _r(rf"{_BEGIN}(?:{'|'.join(_AWS_PREFIXES)})"
                  rf"[A-Z2-7]{{16}}{_END}"),
               0.9, "AWS access key id", literals=_AWS_PREFIXES),
    SecretRule("aws_secret_access_key",
               _r(r"(?i:aws.{0,20}?(?:secret|key).{0,20}?)[\"'=: \t]{1,4}"
                  r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
               0.9, "AWS secret access key", group=1, min_entropy=3.5,
               literals=("aws",), folded=True),
    SecretRule("gcp_api_key", _r(rf"{_BEGIN}AIza[0-9A-Za-z_\-]{{35}}{_END}"), 0.9,
               "Google Cloud API key", literals=("AIza",)),
    SecretRule("gcp_service_account_key",
               _r(r"\"type\"[ \t]*:[ \t]*\"service_account\""), 0.85,
               "Google Cloud service-account key file", literals=('"service_account"',)),
    SecretRule("gcp_oauth_token", _r(rf"{_BEGIN}ya29\.[0-9A-Za-z_\-]{{30,}}{_END}"), 0.85,
               "Google OAuth access token", literals=("ya29.",)),
    SecretRule("azure_storage_key",
               _r(r"AccountKey=([A-Za-z0-9+/]{86}==)"), 0.95, "Azure storage account key",
               group=1, literals=("AccountKey=",)),
    SecretRule("azure_sas_token",
               _r(r"[?&]sig=([A-Za-z0-9%+/]{30,100}(?:%3D|=){0,2})(?![A-Za-z0-9%])"), 0.8,
               "Azure shared access signature", group=1, literals=("sig=",)),
    SecretRule("azure_client_secret",
               _r(rf"{_BEGIN}[A-Za-z0-9_~.\-]{{3}}8Q~[A-Za-z0-9_~.\-]{{31,34}}{_END}"), 0.85,
               "Azure AD client secret", literals=("8Q~",)),
    SecretRule("github_token",
               _r(rf"{_BEGIN}(?:gh[pousr]_[A-Za-z0-9]{{36,255}}|github_pat_[A-Za-z0-9_]{{82}}){_END}"),
               0.95, "GitHub token",
               literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    SecretRule("gitlab_token",
               _r(rf"{_BEGIN}(?:{'|'.join(p[:-1] for p in _GITLAB_PREFIXES)})-"
                  rf"[A-Za-z0-9_\-]{{20,64}}{_END}"),
               0.95, "GitLab token", literals=_GITLAB_PREFIXES),
    SecretRule("slack_token",
               _r(rf"{_BEGIN}xox[abposr]-[0-9A-Za-z\-]{{10,250}}{_END}"), 0.95, "Slack token",
               literals=("xox",)),
    SecretRule("slack_webhook",
               _r(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,120}"),
               0.9, "Slack incoming webhook URL", literals=("https://hooks.slack.com/",)),
    SecretRule("stripe_key",
               _r(rf"{_BEGIN}(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{{24,99}}{_END}"), 0.95,
               "Stripe secret or restricted key", literals=("_live_", "_test_")),
    SecretRule("anthropic_api_key",
               _r(rf"{_BEGIN}sk-ant-(?:api|admin)[0-9]{{2}}-[A-Za-z0-9_\-]{{80,120}}{_END}"),
               0.95, "Anthropic API key", literals=("sk-ant-",)),
    SecretRule("openai_api_key",
               _r(rf"{_BEGIN}sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]{{20,200}}"
                  rf"|[A-Za-z0-9]{{20}}T3BlbkFJ[A-Za-z0-9]{{20}}|[A-Za-z0-9]{{48}}){_END}"),
               0.9, "OpenAI API key", literals=("sk-",)),
    SecretRule("huggingface_token", _r(rf"{_BEGIN}hf_[A-Za-z]{{34,40}}{_END}"), 0.9,
               "Hugging Face access token", literals=("hf_",)),
    SecretRule("private_key",
               _r(r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"),
               0.99, "private key block", literals=("-----BEGIN",)),
    SecretRule("jwt",
               _r(rf"{_BEGIN}eyJ[A-Za-z0-9_\-]{{8,4000}}\.eyJ[A-Za-z0-9_\-]{{2,8000}}\."
                  rf"[A-Za-z0-9_\-]{{0,2000}}{_END}"),
               0.85, "JSON Web Token", literals=("eyJ",)),
    SecretRule("url_credentials",
               _r(r"[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@]{1,128}:([^\s:/@]{1,256})@[^\s/@]{1,256}"),
               0.9, "password in a URL or connection string", group=1, literals=("://",)),
    SecretRule("connection_string_password",
               _r(r"(?i:(?<![a-z])(?:password|pwd|passwd)[ \t]*=[ \t]*)([^;\s'\"]{4,256})"),
               0.85, "password in a connection string", group=1,
               literals=("passw", "pwd"), folded=True),
    SecretRule("npm_token", _r(rf"{_BEGIN}npm_[A-Za-z0-9]{{36}}{_END}"), 0.9, "npm token",
               literals=("npm_",)),
    SecretRule("pypi_token", _r(rf"{_BEGIN}pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{{50,}}{_END}"),
               0.95, "PyPI API token", literals=("pypi-AgEIcHlwaS5vcmc",)),
    SecretRule("sendgrid_key",
               _r(rf"{_BEGIN}SG\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9_\-]{{43}}{_END}"), 0.95,
               "SendGrid API key", literals=("SG.",)),
)

# Assignments like  token = "…", "api_key": "…", Authorization: Bearer …
_ASSIGNED = re.compile(
    r"(?i:(?<![a-z0-9])(?P<name>[a-z0-9_.\-]{0,30}?(?:secret|token|api[_\-]?key|apikey|passwd|"
    r"password|pwd|access[_\-]?key|private[_\-]?key|client[_\-]?secret|auth|credential|bearer)"
    r"[a-z0-9_.\-]{0,20})[\"']?[ \t]{0,3}(?:=|:|=>|:=)[ \t]{0,3}(?:bearer[ \t]+)?)"
    r"[\"'`]?(?P<value>[A-Za-z0-9+/=_\-.~!@#$%^&*]{8,512})"
)
_BEARER = re.compile(r"(?i:\bbearer)[ \t]+(?P<value>[A-Za-z0-9+/=_\-.~]{16,2048})")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<.*>|\$\{.*\}|\{\{.*\}\}|changeme|password|secret|example|"
    r"your[_\-].*|redacted|none|null|true|false|undefined|test|dummy|xxx.*)$"
)
ENTROPY_THRESHOLD = 3.0  # bits per character; English words sit near 2.5, random base64 near 5.5


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _jwt_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        return isinstance(json.loads(raw), dict)
    except (binascii.Error, ValueError):
        return False


def scan(text: str, *, min_score: float = 0.5) -> list[Finding]:
    """Secret findings in ``text``, non-overlapping and sorted by position."""
    if not text:
        return []
    folded = fold_case(text)
    marks = {mark for mark in _MARKS if mark in text}
    found: list[Finding] = []
    for rule, rule_marks in _PLAN:
        if rule.literals:
            if rule_marks and marks.isdisjoint(rule_marks):
                continue
            if not _holds_any(folded if rule.folded else text, rule.literals):
                continue
        for m in rule.pattern.finditer(text):
            value = m.group(rule.group)
            if rule.min_entropy and shannon_entropy(value) < rule.min_entropy:
                continue
            if rule.kind == "jwt" and not _jwt_ok(value):
                continue
            if rule.kind in ("url_credentials", "connection_string_password") and (
                _PLACEHOLDER.match(value)
            ):
                continue
            start, end = m.span(rule.group)
            if rule.kind == "private_key":
                end = _key_block_end(text, end)
            found.append(Finding(start, end, ENTITY, rule.score, rule.kind, rule.description))
    found.extend(_generic(text, folded))
    return resolve_overlaps(f for f in found if f.score >= min_score)


# Characters outside ASCII that a case-insensitive pattern takes for an ASCII letter, and
# that str.lower() does not turn into one: dotless i, long s, and the combining dot that
# lower() leaves after the i of a dotted capital I.
_FOLD_EXTRA = str.maketrans({"\u0131": "i", "\u017f": "s", "\u0307": None})


def fold_case(text: str) -> str:
    """``text`` lowered so that an ASCII literal a ``(?i)`` pattern matches is a substring.

    Only for testing whether a literal is present: offsets may differ from ``text``.
    """
    lowered = text.lower()
    if lowered.isascii() or not ("\u0131" in lowered or "\u017f" in lowered or "\u0307" in lowered):
        return lowered
    return lowered.translate(_FOLD_EXTRA)


def _holds_any(text: str, literals: tuple[str, ...]) -> bool:
    for literal in literals:  # noqa: SIM110  (a plain loop is faster than any() over a genexpr)
        if literal in text:
            return True
    return False


# Characters, rarest in prose first, that mark literals: a rule whose every literal contains
# one of these is passed over, without looking for its literals, when the text holds none.
_MARKS = '_~="=:-.xJA'


def _rule_marks(rule: SecretRule) -> frozenset[str]:
    """One mark from each literal of a case-sensitive rule; empty when some literal has none."""
    if rule.folded:
        return frozenset()
    chosen: set[str] = set()
    for literal in rule.literals:
        mark = next((m for m in _MARKS if m in literal), None)
        if mark is None:
            return frozenset()
        chosen.add(mark)
    return frozenset(chosen)


_PLAN = tuple((rule, _rule_marks(rule)) for rule in RULES)


_KEY_END = re.compile(r"-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----")
MAX_KEY_BLOCK = 16384


def _key_block_end(text: str, header_end: int) -> int:
    """Where the key block that starts at a header ends: its END line, else the header."""
    m = _KEY_END.search(text, header_end, header_end + MAX_KEY_BLOCK)
    return m.end() if m is not None else header_end


# Every match of _ASSIGNED names one of these; of _BEARER, the first (in folded text).
_ASSIGNED_WORDS = ("secret", "token", "key", "passw", "pwd", "auth", "credential", "bearer")
_BEARER_WORDS = ("bearer",)


def _generic(text: str, folded: str) -> Iterable[Finding]:
    for pattern, kind, words in (
        (_ASSIGNED, "generic_secret", _ASSIGNED_WORDS),
        (_BEARER, "bearer_token", _BEARER_WORDS),
    ):
        if not _holds_any(folded, words):
            continue
        for m in pattern.finditer(text):
            value = m.group("value").rstrip(".,;")
            if _PLACEHOLDER.match(value) or len(value) < 8:
                continue
            entropy = shannon_entropy(value)
            classes = sum(
                (any(c.islower() for c in value), any(c.isupper() for c in value),
                 any(c.isdigit() for c in value), any(not c.isalnum() for c in value))
            )
            if entropy < ENTROPY_THRESHOLD or classes < 2:
                continue
            start = m.start("value")
            score = 0.7 if entropy >= 3.5 and len(value) >= 16 else 0.55
            yield Finding(
                start, start + len(value), ENTITY, score, kind,
                f"high-entropy value ({entropy:.1f} bits/char) assigned to a secret-like name",
            )


def guard(text: str, *, threshold: float = 0.5, redact: bool = True) -> ScanResult:
    """The scanner triple: secrets replaced by ``<SECRET:kind>``, invalid when any is found."""
    findings = scan(text, min_score=threshold)
    sanitized = text
    if redact:
        for f in reversed(findings):
            sanitized = sanitized[: f.start] + f"<SECRET:{f.recognizer}>" + sanitized[f.end :]
    return ScanResult(sanitized, not findings, max_score(findings), tuple(findings))


__all__ = ["ENTITY", "RULES", "SecretRule", "fold_case", "guard", "scan", "shannon_entropy"]
