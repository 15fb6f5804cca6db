"""The phone recognizer's shortcuts report exactly what the plain computation reports.

Two shortcuts are checked here against what they replace: the candidate scan that starts at
its first character (against the pattern led by a look-behind), and the verdict per region
that asks libphonenumber for possibility before validity and reuses the verdict of a number
already parsed for the same candidate (against parse, then validity, then possibility, for
each region anew).  Inputs are generated phone-like strings and the development set.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tsuba.guards.pii import phone
from tsuba.guards.pii.recognizer import TextContext
from tsuba.guards.types import Finding

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "pii" / (
    "presidio_research_synth_dataset_v2.json"
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
PLAIN_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9_+.\-/:@#])(?:\+|00)?\(?[0-9](?:[ \t().\-/]{0,3}[0-9]){6,16}"
    r"(?:[ \t]{0,2}(?:x|ext\.?|extension|#)[ \t]{0,2}[0-9]{1,5})?(?![A-Za-z0-9_\-/]|\.[0-9]|:[0-9])"
)
REGIONS = sorted(
    {r for rs in phone.LANGUAGE_REGIONS.values() for r in rs} | set(phone.WIDE_REGIONS)
)

# Digit groups people write, with the separators and prefixes the candidate pattern allows.
GROUP = st.text(alphabet="0123456789", min_size=1, max_size=5)
SEP = st.sampled_from(["", " ", "-", ".", "/", ") ", " (", "  ", "\t"])
PHONE_LIKE = st.builds(
    lambda prefix, groups, seps, ext: prefix
    + "".join(g + s for g, s in zip(groups, seps + [""] * len(groups), strict=False))
    + ext,
    st.sampled_from(["", "+", "00", "(", "+(", "0", "011 ", "+1 ", "+44 ", "0161", "1"]),
    st.lists(GROUP, min_size=1, max_size=6),
    st.lists(SEP, max_size=6),
    st.sampled_from(["", " x12", " ext. 7", "#5", " extension 123"]),
)
AROUND = st.text(alphabet="ab Z09+-./:@#(\n", max_size=6)


def plain_verdict(raw: str, region: str | None) -> int:
    """The verdict as libphonenumber gives it: parse, then validity, then possibility."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return phone._INVALID
    if phonenumbers.is_valid_number(number):
        return phone._VALID
    if phonenumbers.is_possible_number(number):
        return phone._POSSIBLE
    return phone._INVALID


def _check_regions(raw: str) -> None:
    seen: dict[phone._Key, int] = {}
    for region in (*REGIONS, None):
        assert phone._check_number(raw, region, seen) == plain_verdict(raw, region), (raw, region)
        assert phone._check_number(raw, region) == plain_verdict(raw, region), (raw, region)


@FAST
@given(PHONE_LIKE)
@example("(555) 123-4567")
@example("0171 234 5678")
@example("011 44 20 7946 0958")
@example("0161 9 123 4567")
@example("613-555-0199")
def test_verdicts_equal_plain_libphonenumber_in_every_region(raw: str) -> None:
    _check_regions(raw)


@FAST
@given(st.lists(st.one_of(PHONE_LIKE, AROUND), max_size=4))
@example(["a+1 (555) 123-4567"])
@example([":00 44 20 7946 0958"])
@example(["(0", "00(1234567"])
@example(["0012345678901234567"])  # "00" and 17 digits: only read as a prefix does it fit
def test_candidate_scan_matches_the_plain_pattern(parts: list[str]) -> None:
    text = "".join(parts)
    spans = [m.span() for m in phone._CANDIDATE.finditer(text)]
    assert spans == [m.span() for m in PLAIN_CANDIDATE.finditer(text)]


class PlainPhone(phone.PhoneRecognizer):
    """The recognizer as it reads without the shortcuts: the plain candidate pattern and a
    fresh verdict for every region."""

    def analyze(self, text: str, ctx: TextContext) -> list[Finding]:  # type: ignore[override]
        saved_candidate, saved_check = phone._CANDIDATE, phone._check_number
        phone._CANDIDATE = PLAIN_CANDIDATE
        phone._check_number = lambda raw, region, seen=None: plain_verdict(raw, region)
        try:
            return list(super().analyze(text, ctx))
        finally:
            phone._CANDIDATE, phone._check_number = saved_candidate, saved_check


@pytest.mark.skipif(not DEV.exists(), reason="development set not present")
def test_development_set_findings_unchanged() -> None:
    docs = json.loads(DEV.read_text())
    texts = [d["full_text"] for d in docs]
    fast, plain = phone.PhoneRecognizer(), PlainPhone()
    checked = 0
    for text in texts:
        for language in ("en", "de"):
            got = list(fast.analyze(text, TextContext(text, language)))
            assert got == plain.analyze(text, TextContext(text, language)), text
            checked += len(got)
    assert checked > 100  # the set holds phone numbers: the comparison saw findings
