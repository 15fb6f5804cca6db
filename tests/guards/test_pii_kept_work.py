"""Work the analyzer keeps instead of redoing reports what redoing it would.

A word's token shape (key, case, possessive) is kept in a bounded table; the analyzer skips
asking a pattern whether it is silent where the pattern cannot be.  Both are checked against
the plain computation on generated text.
"""

# ruff: noqa: RUF001  (look-alike letters and apostrophes are what tokens must handle)
from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.guards.pii import Analyzer, names
from tsuba.guards.pii.recognizer import TextContext

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
WORDISH = st.text(alphabet="AbcÉéßİıK'’s.-Ωω", min_size=1, max_size=8)


def plain_token(start: int, raw: str) -> names._Tok | None:
    word = raw[:-1] if raw.endswith(".") and len(raw) > 2 else raw
    end = start + len(word)
    possessive = word.endswith(("'s", "’s"))
    if possessive:
        word, end = word[:-2], end - 2
    if not word:
        return None
    key = unicodedata.normalize("NFC", word.lower())
    return names._Tok(start, end, word, key, word[0].isupper(), possessive)


@FAST
@given(st.integers(0, 500), WORDISH)
def test_kept_token_shapes_give_the_plain_token(start: int, raw: str) -> None:
    assert names._token(start, raw) == plain_token(start, raw)
    assert names._token(start + 7, raw) == plain_token(start + 7, raw)  # now from the table


def test_token_table_is_bounded() -> None:
    for k in range(names.MAX_SHAPES + 10):
        names._token(0, f"W{k}")
    assert len(names._SHAPES) <= names.MAX_SHAPES
    assert names._token(3, "Anna's") == plain_token(3, "Anna's")


TEXT = st.lists(
    st.sampled_from(
        ["Card", "4111 1111 1111 1111", "192.168.0.1", " ", "DE89370400440532013000",
         "license", "D1234567", "call", "+49 30 1234567", "x", "123456789", "\n", "nhs"]
    ),
    max_size=8,
).map("".join)


@FAST
@given(TEXT, st.sampled_from([0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9]))
def test_patterns_never_asked_are_never_silent(text: str, threshold: float) -> None:
    analyzer = Analyzer()
    ctx = TextContext(text, "en")
    for step in analyzer._applicable(ctx, "en", None):
        if step.pattern is not None and threshold <= step.live:
            assert not step.pattern.silent(ctx, threshold), step.pattern.name
