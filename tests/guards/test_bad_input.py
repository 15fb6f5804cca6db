"""Bad input for every scanner: pathological patterns, huge and mixed-script texts.

Regular-expression safety is shown by structure, not by timing: hypothesis builds inputs
from the characters the patterns care about and every scanner must return findings whose
spans lie inside the text, in order, without overlap.  The benchmark measures time per KB.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.guards import pii, secrets
from tsuba.guards.leaks import find_exfiltration
from tsuba.guards.types import Finding, resolve_overlaps

PIECES = st.sampled_from(
    ["1", "12", "4012", " ", "-", ".", "/", ":", "@", "+", "(", ")", "x", "A", "Ab", "eyJ",
     "ghp_", "http://", "www.", "-----BEGIN PRIVATE KEY-----", "token=", "![", "](", "?q=",
     "東京都", "さん", "Straße", "rue ", "Calle ", "Mr. ", "\n", "\u200b", "é", "0x", "bc1"]
)
TEXTS = st.lists(PIECES, max_size=300).map("".join)


def _well_formed(text: str, findings: list[Finding]) -> None:
    last = 0
    for f in findings:
        assert 0 <= f.start < f.end <= len(text)
        assert f.start >= last
        assert 0.0 < f.score <= 1.0
        last = f.end


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_scanners_survive_pathological_input(text: str) -> None:
    _well_formed(text, pii.analyze(text))
    _well_formed(text, secrets.scan(text))
    for f in find_exfiltration(text):
        assert 0 <= f.start < f.end <= len(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_any_unicode_text(text: str) -> None:
    for lang in ("en", "ja"):
        _well_formed(text, pii.analyze(text, language=lang))
    _well_formed(text, secrets.scan(text))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.integers(1, 10), st.floats(0.01, 1.0),
                  st.sampled_from(["A", "B", "C"])),
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_overlap_resolution_is_deterministic(spans, rnd) -> None:  # type: ignore[no-untyped-def]
    findings = [Finding(s, s + n, t, sc, "r") for s, n, sc, t in spans]
    kept = resolve_overlaps(findings)
    shuffled = list(findings)
    rnd.shuffle(shuffled)
    assert resolve_overlaps(shuffled) == kept
    for a, b in itertools.pairwise(kept):
        assert a.end <= b.start
    for f in findings:  # everything dropped overlaps something kept that ranks at least as high
        if f not in kept:
            assert any(k.overlaps(f) and k.score >= f.score for k in kept)


def test_huge_text_finds_what_is_at_both_ends() -> None:
    filler = "Lorem ipsum dolor sit amet, version 1.2.3 build 2024.01.02 ok. " * 160_000
    text = "mail first@example.com " + filler + " mail last@example.com"
    assert len(text) > 10_000_000
    found = [text[f.start : f.end] for f in pii.analyze(text, ["EMAIL_ADDRESS"])]
    assert found == ["first@example.com", "last@example.com"]
    assert secrets.scan(text) == []


def test_mixed_scripts_in_one_text() -> None:
    text = "Herr Müller (müller@example.de) 東京都港区六本木6-10-1 — Олег 電話 +81 3-1234-5678"
    kinds = {f.entity_type for f in pii.analyze(text, language="ja")}
    assert {"EMAIL_ADDRESS", "ADDRESS", "PHONE_NUMBER"} <= kinds
