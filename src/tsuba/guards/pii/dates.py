"""Dates a person wrote (birthdays, appointments), not the timestamps machines print.

A date followed by a clock time with seconds at the start of a line, in brackets, with a
time zone or fractional seconds, or next to a log level is a log timestamp and is skipped;
so are version strings (``1.2.3``, ``v2.0.1-rc1``), which never carry a four-digit year.
"""

# ruff: noqa: RUF001, E501  (patterns in many scripts)
from __future__ import annotations

import re
from collections.abc import Iterable

from tsuba.guards.pii.recognizer import TextContext, words_pattern
from tsuba.guards.types import Finding

MONTHS = (
    # en
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
    # de
    "januar", "jänner", "februar", "märz", "mai", "juni", "juli", "oktober", "dezember",
    # fr
    "janvier", "février", "mars", "avril", "juin", "juillet", "août", "septembre", "octobre",
    "novembre", "décembre",
    # es
    "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
    "setiembre", "octubre", "noviembre", "diciembre",
    # it, nl
    "gennaio", "febbraio", "aprile", "maggio", "giugno", "luglio", "settembre", "ottobre",
    "dicembre", "januari", "februari", "maart", "mei", "augustus",
)
_MONTH = "(?:" + "|".join(sorted({re.escape(m) for m in MONTHS}, key=len, reverse=True)) + r")\.?"
# A month name standing as a word in the lower-cased text (a textual date has one, with no
# ASCII letter, digit or underscore on either side): without one no textual date can match.
# re's IGNORECASE also folds these three onto ASCII letters, so they are folded first.
def _month_gate() -> re.Pattern[str]:
    """One branch per first letter with the look-behind after that letter: the scan then
    skips to those letters instead of trying every month at every position."""
    by_first: dict[str, list[str]] = {}
    for month in sorted(set(MONTHS), key=len, reverse=True):
        by_first.setdefault(month[0], []).append(re.escape(month[1:]))
    branches = (
        rf"{re.escape(first)}(?<![a-z0-9_].)(?:{'|'.join(rests)})"
        for first, rests in by_first.items()
    )
    return re.compile("(?:" + "|".join(branches) + r")(?![a-z0-9_])")


_ANY_MONTH = _month_gate()
_ODD_FOLDS = str.maketrans({"İ": "i", "ı": "i", "ſ": "s"})
_DAY = r"(?:[0-3]?[0-9])(?:st|nd|rd|th|er|\.|º)?"
_YEAR = r"(?:1[6-9][0-9]{2}|20[0-9]{2})"

_TEXTUAL = re.compile(
    rf"(?<![A-Za-z0-9_])(?:"
    rf"{_DAY}[ \t]+(?:of[ \t]+|de[ \t]+)?{_MONTH}(?:,?[ \t]+(?:de[ \t]+|del[ \t]+)?{_YEAR})?"
    rf"|{_MONTH}[ \t]+{_DAY}(?:,?[ \t]+{_YEAR})?"
    rf"|{_MONTH}[ \t]+(?:de[ \t]+)?{_YEAR}"
    rf")(?![A-Za-z0-9_])",
    re.IGNORECASE,
)
_NUMERIC = re.compile(
    r"(?<![A-Za-z0-9_.\-/:])(?:"
    r"(?P<iso>[12][0-9]{3})-(?P<im>[01]?[0-9])-(?P<id>[0-3]?[0-9])"
    r"|(?P<a>[0-3]?[0-9])(?P<sep>[/.\-])(?P<b>[0-3]?[0-9])(?P=sep)(?P<y>[12][0-9]{3}|[0-9]{2})"
    r"|(?P<ys>[12][0-9]{3})/(?P<ms>[01]?[0-9])/(?P<ds>[0-3]?[0-9])"
    r")(?![A-Za-z0-9_\-/]|\.[0-9])"
)
# Every numeric date has a digit, a separator and a digit in a row; led by a digit, this
# search skips through the text where _NUMERIC, led by a look-behind, tries every position.
_NUMERIC_GATE = re.compile(r"[0-9][/.\-][0-9]")
_DIGITS = re.compile(r"[0-9]+")
_WINDOW = 32
# The one or two words right before a number: where "March 3" or "3 de marzo de 2020" starts.
_WORDS_BEFORE = re.compile(
    r"(?:([^\W\d_]{3,12})\.?,?[ \t]+)?([^\W\d_]{2,12})\.?,?[ \t]+\Z"
)
_YEAR_RE = re.compile(_YEAR)
_JAPANESE = re.compile(
    r"(?:(?:令和|平成|昭和)[0-9０-９元]{1,2}|[0-9０-９]{4})年[0-9０-９]{1,2}月(?:[0-9０-９]{1,2}日)?"
)
_CLOCK = re.compile(
    r"(?:[T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9](?P<frac>[.,][0-9]{1,9})?(?P<tz>Z|[+\-][0-9]{2}:?[0-9]{2})?)"
)
_LOG_LEVEL = re.compile(
    r"\b(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|PANIC|GET|POST|PUT"
    r"|DELETE|HEAD|PATCH|HTTP/[0-9.]+|pid|level|msg)\b"
)
_YEAR_CUE = words_pattern(
    (
        "in", "since", "born", "founded", "established", "until", "till", "from", "during",
        "circa", "year", "im jahr", "seit", "geboren", "depuis", "né en", "née en", "en el año",
        "desde", "nacido", "nacida", "en",
    )
)
_BARE_YEAR = re.compile(rf"(?<![A-Za-z0-9_.\-/:#]){_YEAR}(?![A-Za-z0-9_\-/]|\.[0-9]|:[0-9])")
DATE_CONTEXT = words_pattern(
    (
        "born", "birth", "dob", "date of birth", "birthday", "appointment", "date",
        "geboren", "geburtsdatum", "geburtstag", "né", "née", "naissance", "nacimiento",
        "nacido", "nacida", "fecha", "生年月日", "誕生日",
    )
)


class DateRecognizer:
    name = "date"
    entities = ("DATE_TIME",)
    languages: frozenset[str] | None = None

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        total, _ = ctx.digits()
        if total == 0 and not any("０" <= c <= "９" for c in text if c > "\u3000"):
            return
        yield from self._numeric(text, ctx)
        yield from self._textual(text, ctx)
        for match in _JAPANESE.finditer(text) if "年" in text else ():
            yield self._finding(ctx, match.start(), match.end(), 0.8, "Japanese date")
        # A bare year is a maximal run of exactly four ASCII digits (its edges say so).
        if _YEAR_CUE is not None and 4 in ctx.run_lengths():
            for match in _BARE_YEAR.finditer(text):
                before = ctx.before(match.start(), 16)
                cue = _YEAR_CUE.search(before)
                if cue is not None and not before[cue.end() :].strip(" ,"):
                    yield Finding(
                        match.start(), match.end(), "DATE_TIME", 0.5, self.name,
                        "year after a time preposition",
                    )

    def _numeric(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        if _NUMERIC_GATE.search(text) is None:
            return
        for match in _NUMERIC.finditer(text):
            if match.group("iso"):
                month, day = int(match.group("im")), int(match.group("id"))
            elif match.group("ys"):
                month, day = int(match.group("ms")), int(match.group("ds"))
            else:
                a, b = int(match.group("a")), int(match.group("b"))
                if match.group("sep") == "." and len(match.group("y")) == 2:
                    continue  # 1.2.23 is far more often a version than a date
                month, day = (a, b) if a <= 12 else (b, a)
            if not (1 <= month <= 12 and 1 <= day <= 31):
                continue
            start, end = match.span()
            clock = _CLOCK.match(text, end)
            if clock is not None:
                if self._is_log_timestamp(text, start, clock):
                    continue
                end = clock.end()
            yield self._finding(ctx, start, end, 0.6, "calendar date")

    def _textual(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        # A textual date holds a number: look only around the digit runs, not the whole text.
        folded = ctx.lower
        if "İ" in text or "ı" in text or "ſ" in text:
            folded = text.translate(_ODD_FOLDS).lower()
        if _ANY_MONTH.search(folded) is None:
            return
        seen: set[tuple[int, int]] = set()
        for run in _DIGITS.finditer(text):
            if run.end() - run.start() > 4:
                continue  # neither a day nor a year
            starts = [run.start()]
            before = _WORDS_BEFORE.search(ctx.lower, max(0, run.start() - _WINDOW), run.start())
            if before is not None:
                starts.extend(before.start(g) for g in (1, 2) if before.group(g))
            for start in starts:
                match = _TEXTUAL.match(text, start)
                if match is None:
                    continue
                span = match.span()
                if span in seen or not (span[0] <= run.start() and run.end() <= span[1]):
                    continue
                seen.add(span)
                score = 0.65 if _YEAR_RE.search(match.group()) else 0.5
                yield self._finding(ctx, span[0], span[1], score, "date with a month name")

    @staticmethod
    def _is_log_timestamp(text: str, start: int, clock: re.Match[str]) -> bool:
        if clock.group("frac") or clock.group("tz") or clock.group().startswith("T"):
            return True
        line_start = text.rfind("\n", 0, start) + 1
        prefix = text[line_start:start].strip()
        if prefix in ("", "[", "(", "<"):
            return True
        tail = text[clock.end() : clock.end() + 40]
        return _LOG_LEVEL.search(tail) is not None

    def _finding(self, ctx: TextContext, start: int, end: int, score: float, why: str) -> Finding:
        if DATE_CONTEXT is not None and DATE_CONTEXT.search(ctx.window(start, end)):
            score += 0.3
            why += "; context word nearby"
        return Finding(start, end, "DATE_TIME", min(score, 1.0), self.name, why)
