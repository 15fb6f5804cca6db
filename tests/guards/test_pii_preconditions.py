"""The cheap preconditions that let the analyzer skip work never change what it reports.

Each shortcut (digit-run lengths, context words for weak formats, literals an address pattern
needs, cue endings, the month-name gate, validator reordering) is checked against the plain
computation it replaces, on generated text.
"""

# ruff: noqa: RUF001  (look-alike letters are what the month gate must fold)
from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from stdnum import iban, luhn

from tsuba.guards.pii import Analyzer, address, analyze, dates, default_recognizers, names, patterns
from tsuba.guards.pii.dates import _TEXTUAL
from tsuba.guards.pii.patterns import _CARD_PREFIXES, B, E, valid_card, valid_iban
from tsuba.guards.pii.recognizer import PatternRecognizer, TextContext

PATTERNS = [r for r in default_recognizers() if isinstance(r, PatternRecognizer)]
WITH_RUNS = [r for r in PATTERNS if r.runs is not None]
WEAK = [r for r in PATTERNS if r.score < 0.5 or r.context_required]
LOOKAROUND = re.compile(r"\(\?<?[!=](?:\[(?:\\.|[^\]])*\]|\\.|[^()\[])*(?:\([^()]*\))?[^()]*\)")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
NOISE = st.text(alphabet="0123456789 -./:+abcXYZ\n", max_size=12)


def _core(pattern: str) -> str:
    """The pattern without its word edges and look-arounds, for generating matches."""
    return LOOKAROUND.sub("", pattern.replace(B, "").replace(E, ""))


def _raw(analyzer: Analyzer, text: str) -> list[tuple[int, int, str, float]]:
    found = analyzer.analyze(text, min_score=0.0, resolve=False)
    return sorted((f.start, f.end, f.entity_type, round(f.score, 6)) for f in found)


@pytest.mark.parametrize("rec", WITH_RUNS, ids=lambda r: r.name)
def test_digit_run_lengths_skip_only_texts_without_a_match(rec: PatternRecognizer) -> None:
    plain = dataclasses.replace(rec, runs=None)

    @FAST
    @given(NOISE, st.from_regex(_core(rec.pattern), fullmatch=True), NOISE)
    def check(before: str, value: str, after: str) -> None:
        text = f"{before} {value} {after}"
        assert _raw(Analyzer([rec]), text) == _raw(Analyzer([plain]), text)

    check()


@pytest.mark.parametrize("rec", WEAK, ids=lambda r: r.name)
def test_weak_formats_skipped_without_context_report_what_they_would(
    rec: PatternRecognizer,
) -> None:
    words = [*rec.context, "xx", "order"]

    @FAST
    @given(
        st.lists(st.sampled_from(words), max_size=3),
        st.from_regex(_core(rec.pattern), fullmatch=True),
        st.sampled_from(["", " ", ": ", "x"]),
    )
    def check(context: list[str], value: str, glue: str) -> None:
        text = " ".join(context) + glue + value + " end"
        ctx = TextContext(text, "en")
        expected = sorted(
            (f.start, f.end, f.entity_type) for f in rec.analyze(text, ctx) if f.score >= 0.5
        )
        found = Analyzer([rec]).analyze(text, resolve=False)
        got = sorted((f.start, f.end, f.entity_type) for f in found)
        assert got == expected

    check()


NEEDY = [p for p in address.AddressRecognizer()._patterns if p[4]]


@pytest.mark.parametrize("entry", NEEDY, ids=lambda p: p[2])
def test_every_address_match_holds_a_needed_literal(entry: tuple) -> None:  # type: ignore[type-arg]
    pattern, _, _, _, needs = entry

    @FAST
    @given(st.from_regex(_core(pattern.pattern), fullmatch=True))
    def check(value: str) -> None:
        for m in pattern.finditer(f" {value} "):
            assert any(word in m.group() for word in needs)

    check()


def test_no_cue_word_ends_in_a_separator() -> None:
    for cues in (names.NAME_CUES, names.PLACE_CUES):
        for word in cues._endings:
            assert word[-1] not in names._BETWEEN, word


@FAST
@given(
    st.lists(
        st.sampled_from(["my name is", "dear", "from", "in", "hi", "x", "idea", ",", " ", "-"]),
        max_size=6,
    )
)
def test_cue_endings_agree_with_the_full_cue_scan(parts: list[str]) -> None:
    before = " ".join(parts)
    for cues in (names.NAME_CUES, names.PLACE_CUES):
        assert cues._pattern is not None
        full = any(
            not before[m.end() :].strip(names._BETWEEN) for m in cues._pattern.finditer(before)
        )
        assert cues.end(before) == full


_OLD_CAP_RUN = re.compile(
    rf"(?<![\w'’\-])(?:[{names._UPPER}]\.|{names._CAPWORD})"
    rf"(?:[ ](?:{names._CONNECTOR_RE}[ ]){{0,2}}(?:[{names._UPPER}]\.|{names._CAPWORD})){{0,5}}"
)


@FAST
@given(st.text(alphabet="AbZé' -.J\nÉvan dr", max_size=60))
def test_capitalised_runs_scan_as_with_a_leading_look_behind(text: str) -> None:
    new = [m.span() for m in names._CAP_RUN.finditer(text)]
    assert new == [m.span() for m in _OLD_CAP_RUN.finditer(text)]


@pytest.mark.parametrize(
    "text", ["born on 3 ſeptember 2020", "Geburtstag: 3. MÄRZ 1990", "on aprıl 3, 2020"]
)
def test_month_gate_folds_like_ignorecase(text: str) -> None:
    assert _TEXTUAL.search(text) is not None
    assert any(f.entity_type == "DATE_TIME" for f in analyze(text, language="de"))


def _old_card(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    if not 12 <= len(digits) <= 19 or not luhn.is_valid(digits) or len(set(digits)) < 2:
        return False
    return any(len(digits) in n and digits.startswith(p) for p, n in _CARD_PREFIXES)


@FAST
@given(st.from_regex(r"[0-9](?:[ \-]?[0-9]){11,18}", fullmatch=True))
def test_card_validator_order_does_not_change_the_verdict(value: str) -> None:
    assert valid_card(value) == _old_card(value)


@FAST
@given(st.from_regex(r"[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}", fullmatch=True))
def test_iban_country_look_up_does_not_change_the_verdict(value: str) -> None:
    assert valid_iban(value) == bool(iban.is_valid(value))


def test_valid_ibans_of_every_shape_pass() -> None:
    for value in (
        "DE89 3704 0044 0532 0130 00",
        "gb82west12345698765432",
        "FR1420041010050500013M02606",
    ):
        assert valid_iban(value)


def _one_word_samples() -> list[str]:
    gz = names.gazetteer()
    pick = [
        *sorted(gz.first)[:40:4],
        *sorted(gz.surnames)[:40:4],
        *sorted(gz.places)[:40:4],
        *sorted(gz.common)[:200:10],
        "Zorbleck", "Dr", "Herr", "Paris", "Will", "Jordan",
    ]
    return [w[:1].upper() + w[1:] for w in pick if w and " " not in w and w.isalpha()]


@pytest.mark.parametrize("word", _one_word_samples())
@pytest.mark.parametrize("before", ["", "Done. ", "Dear ", "Dr ", "so, ", "I met "])
def test_one_word_runs_skipped_early_would_yield_nothing(word: str, before: str) -> None:
    text = f"{before}{word} came by."
    rec = names.NameRecognizer()
    gz = names.gazetteer()
    start = len(before)
    toks = names._tokens(text, start, start + len(word))
    prev = names._PREV_WORD.search(text, max(0, start - 16), start)
    if prev is not None:
        lead = prev.group(1)
        toks.insert(0, names._Tok(prev.start(1), prev.end(1), lead, lead.lower(), cap=False))
    first = 1 if prev is not None else 0
    key = toks[first].key
    skipped = names._nothing_alone(gz, key) or (
        names._unknown_opener(gz, key)
        and (prev is None or not names._is_title(toks[0].key))
        and rec._sentence_start(text, toks[first].start)
    )
    if skipped:
        ctx = TextContext(text, "en")
        assert list(rec._run(text, ctx, gz, toks, i=first, j=first + 1)) == []


# The patterns that moved their leading look-behind after the first character, as they were.
_REWRITTEN = {
    "card": (patterns._CARD, rf"{B}[0-9](?:[ \-]?[0-9]){{11,18}}{E}"),
    "btc": (
        patterns._BTC,
        r"(?<![A-Za-z0-9_])(?:bc1[a-z0-9]{25,87}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})(?![A-Za-z0-9_])",
    ),
    "iban": (
        patterns._IBAN,
        r"(?<![A-Za-z0-9_])[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}"
        r"(?:[ ]?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9_])",
    ),
    "ipv4": (
        patterns._IPV4, r"(?<![A-Za-z0-9_.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![A-Za-z0-9_]|\.[0-9])"
    ),
    "en_street": (address._EN, address._EN.replace(
        r"[0-9](?<![\w\-].)[0-9]{0,5}", r"(?<![\w\-])[0-9]{1,6}")),
    "suffix_street": (address._SUFFIX_STREET, address._SUFFIX_STREET.replace(
        rf"[0-9A-ZÀ-ÖØ-ÞĀ-Ž](?<![\w].)"
        rf"(?:(?<=[0-9])[0-9]{{0,5}}[ \t]+{address._CAP}|(?<={address._CAP}))",
        rf"(?<![\w])(?:[0-9]{{1,6}}[ \t]+)?{address._CAP}")),
    "fr_street": (address._FR, address._FR.replace(
        r"[0-9](?<![\w].)[0-9]{0,3}", r"(?<![\w])[0-9]{1,4}")),
}


@pytest.mark.parametrize("name", sorted(_REWRITTEN))
def test_rewritten_patterns_match_as_before(name: str) -> None:
    new, old = (re.compile(p) for p in _REWRITTEN[name])
    assert new.pattern != old.pattern

    @FAST
    @given(
        st.lists(
            st.one_of(
                st.from_regex(_core(old.pattern), fullmatch=True),
                st.text(alphabet="bc13aZ09 -_./@#:+x\n", max_size=8),
            ),
            max_size=4,
        )
    )
    def check(parts: list[str]) -> None:
        text = "".join(parts)
        assert [m.span() for m in new.finditer(text)] == [m.span() for m in old.finditer(text)]

    check()


@FAST
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["May", "MÄRZ", "sept.", "ſeptember", "aprıl", "Oct", "mai", "de"]),
            st.text(alphabet="0123 ,.\taéK_x-", max_size=5),
        ),
        max_size=6,
    )
)
def test_month_gate_passes_wherever_a_textual_date_matches(parts: list[str]) -> None:
    text = " ".join(parts)
    folded = text.translate(dates._ODD_FOLDS).lower()
    if _TEXTUAL.search(text) is not None:
        assert dates._ANY_MONTH.search(folded) is not None


def test_registry_changes_after_the_first_call_take_effect() -> None:
    analyzer = Analyzer()
    text = "ref ZZ-1234-QQ for Anna"
    assert not any(f.entity_type == "TICKET" for f in analyzer.analyze(text))
    analyzer.add(PatternRecognizer("ticket", "TICKET", r"ZZ-[0-9]{4}-QQ", 0.9))
    assert any(f.entity_type == "TICKET" for f in analyzer.analyze(text))
    analyzer.remove("ticket")
    assert not any(f.entity_type == "TICKET" for f in analyzer.analyze(text))
    analyzer.recognizers[0] = PatternRecognizer("ticket", "TICKET", r"ZZ-[0-9]{4}-QQ", 0.9)
    assert any(f.entity_type == "TICKET" for f in analyzer.analyze(text))


GATED = [r for r in PATTERNS if r.gate is not None]


@pytest.mark.parametrize("rec", GATED, ids=lambda r: r.name)
def test_a_gate_is_found_wherever_its_pattern_matches(rec: PatternRecognizer) -> None:
    pattern, gate = re.compile(rec.pattern, rec.flags), re.compile(rec.gate or "")

    @FAST
    @given(
        st.lists(
            st.one_of(
                st.from_regex(_core(rec.pattern), fullmatch=True),
                st.text(alphabet="0123456789abcfABCF:. -_@/\n", max_size=8),
            ),
            max_size=4,
        )
    )
    def check(parts: list[str]) -> None:
        text = "".join(parts)
        if pattern.search(text) is not None:
            assert gate.search(text) is not None, text

    check()


@FAST
@given(st.lists(st.one_of(st.sampled_from(
    ["AB12", "DE44 5001 0517 5407 3249 31", "4111 1111 1111 1111", "123-45-6789", "passport",
     "C12345678", "2001:db8::1", "10.0.0.1", "Anna Berg", "1990-01-02", "ssn", "+49 30 1234567"]),
    st.text(alphabet="0123456789 -.:ABab", max_size=14)), max_size=6))
def test_steps_kept_per_text_shape_report_what_every_step_would(parts: list[str]) -> None:
    text = " ".join(parts)
    shared = Analyzer()
    for language in ("en", "de", "ja"):
        for wanted in (None, ["US_SSN", "PHONE_NUMBER"], ["PERSON"]):
            fresh = Analyzer()
            got = shared.analyze(text, wanted, language, min_score=0.0, resolve=False)
            plain = [
                f
                for rec in fresh.recognizers
                if (rec.languages is None or language in rec.languages)
                for f in rec.analyze(text, TextContext(text, language))
                if wanted is None or f.entity_type in wanted
            ]
            assert got == sorted(plain, key=lambda f: (f.start, f.end, f.entity_type))


@FAST
@given(st.lists(st.one_of(
    st.sampled_from(["Anna", "J.", "O'Brien", "Berg's", "Jean-Luc", "Müller", "Ça", "A" * 45 + "'s",
                     "B" * 40 + "'x", "C" * 40 + "-d", "Dr.", "van", "de", "Ō", "İstanbul"]),
    st.text(alphabet="AbÉé'’-. \n", max_size=6)), max_size=6))
@example(["B" * 40 + "'x"])
@example(["so", "C" * 40 + "-d"])
@example(["D" * 40 + "’e", "J.", "Berg's"])
def test_one_word_runs_tokenise_as_the_token_scan_does(parts: list[str]) -> None:
    text = " ".join(parts)
    for run in names._CAP_RUN.finditer(text):
        assert names._run_tokens(text, run) == names._tokens(text, run.start(), run.end())


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab Ż1_.\t\n-'²½五", max_size=24), st.integers(0, 24), st.integers(0, 24))
@example("Mr. ", 0, 4)
@example("x  ab. ", 0, 7)
@example("a . ", 0, 4)
def test_word_before_is_what_the_pattern_finds(text: str, lo: int, end: int) -> None:
    lo, end = sorted((min(lo, len(text)), min(end, len(text))))
    m = names._PREV_WORD.search(text, lo, end)
    assert names._word_before(text, lo, end) == (m.span(1) if m is not None else None)


_MONTH_WORDS = sorted(dates.MONTHS)
_PLAIN_MONTH_GATE = re.compile(
    r"(?<![a-z0-9_])(?:" + "|".join(sorted((re.escape(m) for m in _MONTH_WORDS), key=len,
                                           reverse=True)) + r")(?![a-z0-9_])"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_MONTH_WORDS), st.text(alphabet="ab_1 .-/é", max_size=4)),
                max_size=6).map("".join))
def test_month_gate_finds_a_month_where_the_plain_alternation_does(text: str) -> None:
    assert (dates._ANY_MONTH.search(text) is None) == (_PLAIN_MONTH_GATE.search(text) is None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.from_regex(dates._NUMERIC.pattern.replace("(?P=sep)", "[/.\\-]"), fullmatch=True),
    st.text(alphabet="0123456789/.- :T", max_size=6)), max_size=4).map("".join))
def test_numeric_dates_run_only_where_their_gate_is_found(text: str) -> None:
    if dates._NUMERIC.search(text) is not None:
        assert dates._NUMERIC_GATE.search(text) is not None


def test_a_subclass_with_its_own_analyze_is_run_through_it() -> None:
    class Doubled(PatternRecognizer):
        def analyze(self, text: str, ctx: TextContext):  # type: ignore[no-untyped-def]
            for f in super().analyze(text, ctx):
                yield dataclasses.replace(f, recognizer="doubled")

    rec = Doubled("ticket", "TICKET", r"ZZ-[0-9]{4}-QQ", 0.9)
    found = Analyzer([rec]).analyze("ref ZZ-1234-QQ")
    assert [(f.entity_type, f.recognizer) for f in found] == [("TICKET", "doubled")]


@pytest.mark.parametrize("entry", NEEDY, ids=lambda p: p[2])
def test_address_literal_search_finds_what_looking_for_each_literal_finds(entry: tuple) -> None:  # type: ignore[type-arg]
    needs = entry[4]
    search = address.literal_search(needs)
    assert search is not None

    pieces = st.one_of(
        st.sampled_from(list(needs)),
        st.sampled_from([w[:-1] for w in needs]),
        st.text(alphabet="AaCc /.Boxx〒県 ", max_size=5),
    )

    @FAST
    @given(st.lists(pieces, max_size=5).map("".join))
    def check(text: str) -> None:
        assert (search.search(text) is not None) == any(w in text for w in needs)

    check()
