"""secrets.scan runs a pattern only on text that holds one of its literals; the findings
must be exactly those of running every pattern on every text.

The reference below is the scan without any gate: every rule's pattern and both generic
patterns over the whole text, with the same checks on each match.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.guards import secrets
from tsuba.guards.types import Finding, resolve_overlaps

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "pii" / (
    "presidio_research_synth_dataset_v2.json"
)


def reference_scan(text: str, *, min_score: float = 0.5) -> list[Finding]:
    if not text:
        return []
    found: list[Finding] = []
    for rule in secrets.RULES:
        for m in rule.pattern.finditer(text):
            value = m.group(rule.group)
            if rule.min_entropy and secrets.shannon_entropy(value) < rule.min_entropy:
                continue
            if rule.kind == "jwt" and not secrets._jwt_ok(value):
                continue
            if rule.kind in ("url_credentials", "connection_string_password") and (
                secrets._PLACEHOLDER.match(value)
            ):
                continue
            start, end = m.span(rule.group)
            if rule.kind == "private_key":
                end = secrets._key_block_end(text, end)
            found.append(Finding(start, end, "SECRET", rule.score, rule.kind, rule.description))
    found.extend(_reference_generic(text))
    return resolve_overlaps(f for f in found if f.score >= min_score)


def _reference_generic(text: str) -> Iterable[Finding]:
    for pattern, kind in ((secrets._ASSIGNED, "generic_secret"), (secrets._BEARER, "bearer_token")):
        for m in pattern.finditer(text):
            value = m.group("value").rstrip(".,;")
            if secrets._PLACEHOLDER.match(value) or len(value) < 8:
                continue
            entropy = secrets.shannon_entropy(value)
            classes = sum(
                (any(c.islower() for c in value), any(c.isupper() for c in value),
                 any(c.isdigit() for c in value), any(not c.isalnum() for c in value))
            )
            if entropy < secrets.ENTROPY_THRESHOLD or classes < 2:
                continue
            start = m.start("value")
            score = 0.7 if entropy >= 3.5 and len(value) >= 16 else 0.55
            yield Finding(
                start, start + len(value), "SECRET", score, kind,
                f"high-entropy value ({entropy:.1f} bits/char) assigned to a secret-like name",
            )


# ---------------------------------------------------------------- texts

LITERALS = sorted({lit for rule in secrets.RULES for lit in rule.literals}
                  | set(secrets._ASSIGNED_WORDS))
KEYWORDS = ["password", "passwd", "pwd", "api_key", "apiKey", "access-key", "private_key",
            "client_secret", "auth", "credential", "bearer", "token", "secret", "aws"]
# Letters a case-insensitive pattern takes for ASCII ones: dotted capital I, dotless i,
# long s, Kelvin sign.
LOOKALIKES = {"i": ["\u0130", "\u0131"], "s": ["\u017f"], "k": ["\u212a"]}
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "_-"


def _variants(word: str) -> st.SearchStrategy[str]:
    def spell(draw_bits: list[int]) -> str:
        out = []
        for ch, bit in zip(word, draw_bits, strict=False):
            if bit == 1:
                out.append(ch.upper())
            elif bit == 2 and ch in LOOKALIKES:
                out.append(LOOKALIKES[ch][len(out) % len(LOOKALIKES[ch])])
            else:
                out.append(ch)
        return "".join(out)

    return st.lists(st.integers(0, 2), min_size=len(word), max_size=len(word)).map(spell)


def _run(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


FRAGMENTS = st.one_of(
    st.sampled_from(LITERALS),
    st.sampled_from(KEYWORDS).flatmap(_variants),
    _run(string.ascii_letters + string.digits, 1, 60),
    _run(B64, 20, 100),
    _run(URLSAFE, 8, 120),
    st.sampled_from([" ", "\n", " = ", ": ", '"', "'", "=", "://", "@", ":", ";", ".", "?sig=",
                     "&sig=", "AccountKey=", "Bearer ", "-----END RSA PRIVATE KEY-----",
                     '"type": "service_account"', "8Q~", "eyJhbGciOiJIUzI1NiJ9.", "xoxb-",
                     "sk-ant-api03-", "sk-proj-", "ya29.", "SG.", "https://hooks.slack.com/services/",
                     "changeme", "redacted", "Straße", "İstanbul", "naïve"]),
    st.text(max_size=8),
)
TEXTS = st.lists(FRAGMENTS, max_size=14).map("".join)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_gated_scan_equals_ungated_scan(text: str) -> None:
    assert secrets.scan(text) == reference_scan(text)
    assert secrets.scan(text, min_score=0.8) == reference_scan(text, min_score=0.8)


def _planted() -> list[str]:
    import random

    rng = random.Random(7)

    def r(n: int, chars: str = string.ascii_letters + string.digits) -> str:
        return "".join(rng.choice(chars) for _ in range(n))

    values = [
        "AKIA" + r(16, string.ascii_uppercase + "234567"),
        "ASCA" + r(16, string.ascii_uppercase),
        "AIza" + r(35, URLSAFE),
        "ya29." + r(40, URLSAFE),
        "ghp_" + r(36),
        "github_pat_" + r(82),
        "glpat-" + r(20),
        "gloas-" + r(30),
        "xoxb-" + r(11, string.digits) + "-" + r(24),
        "sk_live_" + r(24),
        "rk_test_" + r(30),
        "sk-proj-" + r(64),
        "sk-" + r(48),
        "sk-" + r(20) + "T3BlbkFJ" + r(20),
        "sk-ant-api03-" + r(95, URLSAFE),
        "hf_" + r(34, string.ascii_letters),
        "npm_" + r(36),
        "pypi-AgEIcHlwaS5vcmc" + r(60, URLSAFE),
        "SG." + r(22) + "." + r(43),
        r(3) + "8Q~" + r(32),
        "AccountKey=" + r(86, B64) + "==",
        "https://x.blob.core.windows.net/c?sv=1&sig=" + r(44, B64),
        "https://hooks.slack.com/services/" + r(40),
        "-----BEGIN RSA PRIVATE KEY-----\n" + r(64) + "\n-----END RSA PRIVATE KEY-----",
        "postgres://app:" + r(14) + "@db:5432/x",
        "Server=db;User Id=sa;Password=" + r(12) + ";",
        "PASSWORD=" + r(12),
        "Pwd=" + r(12),
        "DB_PWD = " + r(10) + ";",
        "pa\u017f\u017fword=" + r(12),
        "aws_secret_access_key = " + r(40, B64),
        "AW\u017f secret: " + r(40, B64),
        "api_key: '" + r(30) + "'",
        "Authorization: Bearer " + r(40, URLSAFE),
        "toKen=" + r(20),
        "credent\u0130al = " + r(24) + "!",
        "\u212aey = " + r(24),
        '{"type": "service_account", "project_id": "x"}',
    ]
    out = []
    for v in values:
        out += [v, f"config:\n  value = {v}\nend", f"see ({v}).", f"x{v}y"]
    return out


def test_planted_secrets_match_the_reference() -> None:
    texts = _planted()
    assert sum(bool(secrets.scan(t)) for t in texts) > len(texts) // 2
    for text in texts:
        assert secrets.scan(text) == reference_scan(text), text


@pytest.mark.skipif(not DEV.exists(), reason="PII development set not present")
def test_development_set_matches_the_reference() -> None:
    texts = [d["full_text"] for d in json.loads(DEV.read_text())]
    for text in texts:
        assert secrets.scan(text) == reference_scan(text)


@pytest.mark.parametrize("letter", string.ascii_lowercase)
def test_fold_keeps_every_character_an_ignore_case_pattern_takes_for_a_letter(letter: str) -> None:
    pattern = re.compile(f"(?i:{letter})")
    takers = [chr(cp) for cp in range(0x110000) if pattern.fullmatch(chr(cp))]
    assert len(takers) >= 2
    for ch in takers:
        assert letter in secrets.fold_case(ch), hex(ord(ch))
        assert f"x{letter}y" in secrets.fold_case(f"X{ch}Y")


FOLD_ALPHABET = "pwdasskeyauthtokenbearerPWDASKEY _=\u0131\u017f\u0130\u212a"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(FOLD_ALPHABET)), max_size=40))
def test_a_folded_literal_is_found_wherever_its_pattern_would_match(text: str) -> None:
    folded = secrets.fold_case(text)
    for rule in [r for r in secrets.RULES if r.folded]:
        if rule.pattern.search(text):
            assert any(lit in folded for lit in rule.literals), (rule.kind, text)
    for word in secrets._ASSIGNED_WORDS:
        if re.search(f"(?i:{word})", text):
            assert word in folded, (word, text)
