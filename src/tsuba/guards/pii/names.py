"""Names of people and places without a model: gazetteers plus capitalisation and cues.

Runs of capitalised words are weighed by what they contain (known given names, surnames,
places, ordinary words) and what stands before them (a title, "my name is", "in", "from").
A lone known word is not enough: "Will", "Paris" or "Jordan" become a name or a place only
with a cue.  Japanese names are found by their honorifics (さん, 様, 氏) or a frequent family
name; Japanese places by the prefecture and city names of the gazetteer.
"""

# ruff: noqa: SIM905, RUF001, E501  (word lists in many scripts read best as strings)
from __future__ import annotations

import gzip
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from tsuba.guards.pii.recognizer import TextContext, words_pattern
from tsuba.guards.types import Finding


@dataclass(frozen=True)
class Gazetteer:
    first: frozenset[str]
    surnames: frozenset[str]
    places: dict[str, str]  # lower-cased name -> city | region | country
    common: frozenset[str]
    jp_surnames: frozenset[str]
    max_place_words: int
    spans: dict[str, int]  # first word of a place -> most words a place starting with it has


_lock = threading.Lock()
_cache: list[Gazetteer] = []


def _read(name: str) -> list[str]:
    data = resources.files("tsuba.guards.pii").joinpath("data", name).read_bytes()
    return gzip.decompress(data).decode("utf-8").splitlines()


def gazetteer() -> Gazetteer:
    """The shipped gazetteer, loaded once per process (about a tenth of a second)."""
    if _cache:
        return _cache[0]
    with _lock:
        if not _cache:
            places = dict(line.split("\t", 1) for line in _read("places.tsv.gz") if line)
            _cache.append(
                Gazetteer(
                    first=frozenset(_read("first_names.txt.gz")),
                    surnames=frozenset(_read("surnames.txt.gz")),
                    places=places,
                    common=frozenset(_read("common_words.txt.gz")),
                    jp_surnames=frozenset(_read("jp_surnames.txt.gz")),
                    max_place_words=4,
                    spans=_spans(places),
                )
            )
    return _cache[0]


def _spans(places: dict[str, str]) -> dict[str, int]:
    spans: dict[str, int] = {}
    for key in places:
        words = key.split(" ")
        if spans.get(words[0], 0) < len(words):
            spans[words[0]] = len(words)
    return spans


_BETWEEN = " \t,:;\"'“”-"  # what may stand between a cue and the word it introduces


class _Cues:
    """Cue words, and whether one ends a text (only spaces or punctuation after it)."""

    __slots__ = ("_endings", "_pattern")

    def __init__(self, words: tuple[str, ...]) -> None:
        self._pattern = words_pattern(words)
        self._endings = tuple(w.lower() for w in words)

    def end(self, before: str) -> bool:
        if self._pattern is None:
            return False
        # No cue word ends in a character allowed between, so a cue that counts ends exactly
        # where those start: without such an ending the pattern need not run at all.
        if not before.rstrip(_BETWEEN).endswith(self._endings):
            return False
        return any(not before[m.end() :].strip(_BETWEEN) for m in self._pattern.finditer(before))


_UPPER = (
    "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĲĴĶĹĻĽĿŁŃŅŇŊŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
)
_CAPWORD = rf"[{_UPPER}](?:[^\W\d_]|['’\-](?=[^\W\d_])){{0,40}}"
_CONNECTOR_RE = "(?:van|von|der|den|de|da|das|del|della|di|du|le|la|bin|ibn|al|el|ter|ten|zu|dos|y|e)"
# A run of capitalised words, initials ("J.") and name particles between them.
# The leading capital comes before the look-behind so the scan can skip to capitals.
_CAP_RUN = re.compile(
    rf"[{_UPPER}](?<![\w'’\-].)(?:\.|(?:[^\W\d_]|['’\-](?=[^\W\d_])){{0,40}})"
    rf"(?:[ ](?:{_CONNECTOR_RE}[ ]){{0,2}}(?:[{_UPPER}]\.|{_CAPWORD})){{0,5}}"
)
# Running prose right before a word: "... to town, Derrick" but not "Not Found".
_LOWER_BEFORE = re.compile(r"(?:^|[^\W\d_A-Z])[a-zà-ÿ]{2,}[ ,]{1,3}\Z")
_PREV_WORD = re.compile(r"([^\W\d_]+)\.?[ \t]*\Z")
_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_])){0,40}\.?")
CONNECTORS = frozenset(
    """
van von der den de da das del della di du le la bin ibn al el ter ten zu dos y e st st.
""".split()
)
TITLES = frozenset(
    """
mr mr. mrs mrs. ms ms. miss dr dr. prof prof. sir madam herr frau fräulein monsieur madame
mme mme. mlle m. señor señora señorita sr sr. sra sra. srta don doña signor signora sig.
sig.ra dott. dott dottore dottoressa mevrouw meneer dhr. mevr. capt. capt lt. col. rev. rev
""".split()
)
# Keys that are a title with or without its period ("dr" and "dr."): one look-up.
_TITLE_KEYS = TITLES | {t[:-1] for t in TITLES if t.endswith(".")}
NAME_CUES = _Cues(
    (
        "my name is", "name is", "named", "called", "i am", "i'm", "this is", "dear", "hi",
        "hello", "contact", "signed", "regards", "sincerely", "by", "with", "ask", "tell",
        "name", "patient", "customer", "employee", "applicant", "mein name ist", "ich heiße",
        "ich bin", "je m'appelle", "je suis", "je m’appelle", "me llamo", "mi nombre es",
        "soy", "mi chiamo", "sono", "mijn naam is", "ik ben", "nom", "nombre", "cher", "chère",
        "estimado", "estimada", "liebe", "lieber", "sehr geehrte", "sehr geehrter", "von",
        "from", "author", "written by", "guardian", "spouse", "wife", "husband", "son",
        "daughter", "mother", "father", "brother", "sister", "friend", "colleague",
    )
)
PLACE_CUES = _Cues(
    (
        "in", "from", "to", "at", "near", "visit", "visiting", "visited", "travel", "travelling",
        "traveling", "moved", "live", "lives", "living", "born", "city", "town", "country",
        "nach", "aus", "bei", "wohne", "wohnt", "à", "au", "aux", "en", "de", "vers", "depuis",
        "habite", "a", "desde", "hacia", "vivo", "vive", "da", "di", "naar", "uit", "te",
    )
)
_SENTENCE_END = frozenset(".!?\n\"“”:;")
_CJK_RUN = re.compile(r"[\u3005\u4e00-\u9fff\u30a0-\u30ff]{2,24}")
_JP_HONORIFIC = re.compile(
    r"([\u3005\u4e00-\u9fff]{1,4}(?:[ 　]?[\u3005\u4e00-\u9fff\u3040-\u309f\u30a0-\u30ff]{1,4})?)"
    r"(?:さん|様|さま|氏|君|くん|ちゃん|先生|殿)"
)
_JP_NAME_CUE = re.compile(
    r"(?:名前は|氏名[:：]?|私は|担当の?|担当者[:：]?)[ 　]?([\u3005\u4e00-\u9fff]{2,4}(?:[ 　][\u3005\u4e00-\u9fff]{1,3})?)"
)


@dataclass(slots=True)
class _Tok:
    start: int
    end: int
    text: str
    key: str  # lower-cased, trailing period and possessive removed
    cap: bool
    possessive: bool = False


def _tokens(text: str, start: int, end: int) -> list[_Tok]:
    toks = []
    for m in _TOKEN.finditer(text, start, end):
        tok = _token(m.start(), m.group())
        if tok is not None:
            toks.append(tok)
    return toks


def _run_tokens(text: str, run: re.Match[str]) -> list[_Tok]:
    """The tokens of a capitalised run; a run of one word is one token, found without a scan.

    A run without a space is a single word, or an initial; it is one whole token unless it
    was cut off after an apostrophe or hyphen (the token pattern would stop before those).
    """
    raw = run.group()
    if " " not in raw and raw[-1] not in "'’-":
        tok = _token(run.start(), raw)
        return [tok] if tok is not None else []
    return _tokens(text, run.start(), run.end())


def _token(start: int, raw: str) -> _Tok | None:
    shape = _SHAPES.get(raw)
    if shape is None:
        shape = _shape(raw)
        if len(_SHAPES) >= MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[raw] = shape
    if not shape[0]:
        return None
    size, word, key, cap, possessive = shape
    return _Tok(start, start + size, word, key, cap, possessive)


def _shape(raw: str) -> tuple[int, str, str, bool, bool]:
    """What a token of ``raw`` holds apart from its position: (length, word, key, capitalised,
    possessive); length 0 where ``raw`` makes no token."""
    word = raw[:-1] if raw.endswith(".") and len(raw) > 2 else raw
    size = len(word)
    possessive = word.endswith(("'s", "’s"))
    if possessive:
        word, size = word[:-2], size - 2
    if not word:
        return (0, "", "", False, False)
    key = word.lower()
    if not key.isascii():
        key = unicodedata.normalize("NFC", key)
    return (size, word, key, word[0].isupper(), possessive)


# Words seen as tokens, with what their tokens hold: texts repeat their words (names, the
# capitalised words that open sentences), and a token built from a kept shape skips the
# case folding and normalisation.  Bounded: cleared when full.
MAX_SHAPES = 1 << 15
_SHAPES: dict[str, tuple[int, str, str, bool, bool]] = {}


class NameRecognizer:
    """PERSON and LOCATION from gazetteers and cues (the fast built-in method)."""

    name = "gazetteer"
    entities = ("PERSON", "LOCATION")
    languages: frozenset[str] | None = None

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        gz = gazetteer()
        for run in _CAP_RUN.finditer(text):
            toks = _run_tokens(text, run)
            if len(toks) == 1 and _nothing_alone(gz, toks[0].key):
                continue  # the same test as below, before looking for the word in front
            prev = _word_before(text, max(0, run.start() - 16), run.start())
            if prev is not None:
                word = text[prev[0] : prev[1]]
                toks.insert(0, _Tok(prev[0], prev[1], word, word.lower(), False))
            first = 1 if prev is not None else 0
            j = len(toks)
            for k in range(first, len(toks) - 1):
                if toks[k].possessive:  # "Anna Berg's Cautionary Tales": the name ends at 's
                    j = k + 1
                    break
            while j > 1 and not toks[j - 1].cap:
                j -= 1  # never end on a connector
            if j - first == 1 and (
                _nothing_alone(gz, toks[first].key)
                or (
                    _unknown_opener(gz, toks[first].key)
                    and (prev is None or not _is_title(toks[0].key))
                    and self._sentence_start(text, toks[first].start)
                )
            ):
                continue
            yield from self._run(text, ctx, gz, toks, i=first, j=j)
        if ctx.language == "ja" or _CJK_RUN.search(text):
            yield from self._japanese(text, gz)

    def _run(
        self, text: str, ctx: TextContext, gz: Gazetteer, toks: list[_Tok], *, i: int, j: int
    ) -> Iterable[Finding]:
        run = toks[i:j]
        sentence_start = self._sentence_start(text, run[0].start)
        prev = toks[i - 1] if i > 0 else None
        titled = prev is not None and prev.key in _TITLE_KEYS
        # A leading title inside the run ("Dr Smith", "Herr Müller") counts as the cue.
        if run[0].key in _TITLE_KEYS:
            titled = True
            run = run[1:]
            sentence_start = False
        place = self._place(gz, run) if run else None
        if place is not None:
            kind, p_start, p_end = place
            leading = all(t.key in gz.common or not t.cap for t in run[:p_start])
            if leading and p_end == len(run):
                sub = run[p_start:]
                found = self._place_finding(gz, sub, kind, ctx.before(sub[0].start, 28), titled)
                if found is not None:
                    yield found
                    return
        # A sentence-initial ordinary word is not part of a name ("Please call Anna").
        while run and (run[0].key in gz.common and not self._known_person(gz, run[0])):
            run = run[1:]
            sentence_start = False
        named = False
        for t in run:
            if t.key in gz.first and t.key not in gz.common:  # _known_person
                named = True
                break
        while run and run[-1].key in gz.common and not self._known_person(gz, run[-1]):
            if named and len(run) > 1 and run[-1].key in gz.surnames:
                break  # "John Brown": a surname after a given name, not the colour
            run = run[:-1]
        if not run:
            return
        before = ctx.before(run[0].start, 28)
        raw_before = text[max(0, run[0].start - 28) : run[0].start]
        yield from self._person(
            gz, run, before, titled=titled, sentence_start=sentence_start, raw_before=raw_before
        )

    @staticmethod
    def _sentence_start(text: str, pos: int) -> bool:
        k = pos - 1
        while k >= 0 and text[k] in " \t(\"'“‘«¿¡":
            k -= 1
        return k < 0 or text[k] in _SENTENCE_END

    @staticmethod
    def _known_person(gz: Gazetteer, tok: _Tok) -> bool:
        return tok.key in gz.first and tok.key not in gz.common

    def _place(self, gz: Gazetteer, run: list[_Tok]) -> tuple[str, int, int] | None:
        """The longest gazetteer place inside the run, as (kind, first, end) token indexes."""
        best: tuple[str, int, int] | None = None
        for a in range(len(run)):
            # No place starts with this word, or none with more words than ``span``.
            span = gz.spans.get(run[a].key, 0)
            if not span:
                continue
            span = min(span, gz.max_place_words)
            for b in range(min(len(run), a + span), a, -1):
                if best is not None and b - a <= best[2] - best[1]:
                    break
                key = " ".join(t.key for t in run[a:b])
                kind = gz.places.get(key)
                if kind is not None:
                    best = (kind, a, b)
                    break
        return best

    def _place_finding(
        self, gz: Gazetteer, run: list[_Tok], kind: str, before: str, titled: bool
    ) -> Finding | None:
        if titled or (len(run) == 1 and run[0].text.isupper() and len(run[0].text) <= 4):
            return None  # NHS, EMP, USA-style acronyms are not read as town names
        key = " ".join(t.key for t in run)
        cue = PLACE_CUES.end(before)
        ambiguous = key in gz.common or (
            len(run) == 1 and (key in gz.first or key in gz.surnames)
        )
        if kind == "country":
            score = 0.85 if not ambiguous else 0.5
        elif kind == "region":
            score = 0.7 if not ambiguous else 0.4
        else:
            score = 0.55 if not ambiguous else 0.25
        if cue:
            score += 0.3
        if score < 0.5:
            return None
        why = f"gazetteer {kind}" + ("; place cue before" if cue else "")
        return Finding(run[0].start, run[-1].end, "LOCATION", min(score, 1.0), self.name, why)

    def _person(  # noqa: PLR0912 - one branch per kind of name evidence
        self,
        gz: Gazetteer,
        run: list[_Tok],
        before: str,
        *,
        titled: bool,
        sentence_start: bool,
        raw_before: str = "",
    ) -> Iterable[Finding]:
        run = [t for t in run if t.cap]  # particles (van, de) count for neither side
        if not run or len(run) > 4:
            return
        first: list[bool] = []
        sur: list[bool] = []
        unknown: list[bool] = []
        for t in run:
            k = t.key
            common = k in gz.common
            f = not common and k in gz.first
            s = not common and k in gz.surnames
            first.append(f)
            sur.append(s)
            unknown.append(not (f or s) and not common and k not in gz.places)
        cue = NAME_CUES.end(before)
        allcaps = all(t.text.isupper() and len(t.text) > 1 for t in run)
        n = len(run)
        if titled:
            score, why = 0.85, "title before a capitalised name"
        elif n >= 2 and first[0] and (sur[-1] or unknown[-1] or first[-1]):
            score, why = (0.85 if sur[-1] else 0.7), "given name and family name"
        elif n >= 2 and (sur[-1] or first[0]) and sum(unknown) + sum(sur) + sum(first) == n:
            score, why = 0.6, "capitalised name words"
        elif n >= 2 and all(unknown) and not sentence_start:
            score, why = 0.45, "capitalised unknown words"
        elif n == 1 and (first[0] or sur[0]):
            score, why = (0.45 if first[0] else 0.35), "known name word"
            if not sentence_start and not allcaps and _LOWER_BEFORE.search(raw_before):
                score, why = score + 0.15, why + " inside a sentence"
        elif n == 1 and unknown[0] and not sentence_start:
            score, why = 0.3, "capitalised unknown word"
        else:
            return
        if cue:
            score += 0.3
            why += "; name cue before"
        if allcaps and not titled:
            score -= 0.2
        if sentence_start and not cue and not titled:
            score -= 0.05
        if score >= 0.5:
            yield Finding(run[0].start, run[-1].end, "PERSON", min(score, 1.0), self.name, why)

    def _japanese(self, text: str, gz: Gazetteer) -> Iterable[Finding]:
        for m in _JP_HONORIFIC.finditer(text):
            yield Finding(m.start(1), m.end(1), "PERSON", 0.8, self.name, "name before an honorific")
        for m in _JP_NAME_CUE.finditer(text):
            yield Finding(m.start(1), m.end(1), "PERSON", 0.75, self.name, "name after a cue")
        for m in _CJK_RUN.finditer(text):
            run = m.group()
            k = 0
            while k < len(run):
                hit = 0
                for size in range(min(6, len(run) - k), 1, -1):
                    kind = gz.places.get(run[k : k + size])
                    if kind is not None:
                        yield Finding(
                            m.start() + k, m.start() + k + size, "LOCATION",
                            0.8 if kind != "city" else 0.65, self.name, f"gazetteer {kind}",
                        )
                        hit = size
                        break
                if not hit:
                    for size in (3, 2, 1):
                        if run[k : k + size] in gz.jp_surnames and len(run) - k >= 2:
                            rest = len(run) - k - size
                            if 1 <= rest <= 3:
                                yield Finding(
                                    m.start() + k, m.end(), "PERSON", 0.6, self.name,
                                    "frequent Japanese family name",
                                )
                                hit = len(run) - k
                            break
                k += hit or 1


def _word_before(text: str, lo: int, end: int) -> tuple[int, int] | None:
    """The span ``_PREV_WORD.search(text, lo, end)`` gives as its group, found by walking
    back from ``end`` (a regular-expression search tries every start in the window).

    The pattern's group is a run of letters followed only by an optional period and blanks
    up to ``end``, so it is the letters right before those, back to ``lo`` at most.
    """
    e = end
    while e > lo and text[e - 1] in " \t":
        e -= 1
    if e > lo and text[e - 1] == ".":
        e -= 1
    b = e
    while b > lo:
        c = text[b - 1]
        # [^\W\d_] in re's Unicode terms: alphanumeric, no decimal digit, no underscore.
        if not c.isalnum() or c.isdecimal() or c == "_":
            break
        b -= 1
    return (b, e) if b < e else None


def _is_title(key: str) -> bool:
    return key in _TITLE_KEYS


def _nothing_alone(gz: Gazetteer, key: str) -> bool:
    """Whether a one-word run can yield nothing: a title, or an ordinary word that is no
    place (``_run`` drops both before it weighs anything)."""
    return _is_title(key) or (key in gz.common and key not in gz.places)


def _unknown_opener(gz: Gazetteer, key: str) -> bool:
    """A word that is no place and no known name: alone at a sentence start, after no title,
    ``_person`` gives it no score whatever the cue (an unknown word needs to stand inside a
    sentence)."""
    if key in gz.places:
        return False
    return key in gz.common or (key not in gz.first and key not in gz.surnames)
