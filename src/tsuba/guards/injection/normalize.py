"""Undo the disguises attackers put on instructions before anything tries to read them.

Invisible characters, homoglyphs, compatibility forms and encoded payloads all make an
instruction look different to a detector while an LLM still reads it.  Every step here is
bounded (payload count, length, nesting depth and total decoded size), so a hostile 10 MB
input costs linear time and never recursion without end.
"""
# ruff: noqa: RUF003  (comments show the look-alike letters they handle)


from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

from confusable_homoglyphs import confusables

# Limits that keep hostile inputs linear.
MAX_DEPTH = 3  # an encoding inside an encoding inside an encoding
MAX_PAYLOADS = 16  # decoded payloads kept per input
MAX_PAYLOAD_CHARS = 16_384  # longest encoded run that is decoded
MAX_DECODED_TOTAL = 65_536  # decoded characters kept per input, all payloads together
MIN_B64 = 16
MIN_HEX_BYTES = 8

# Zero-width, joiners, word joiner, BOM, soft hyphen, Mongolian vowel separator, variation
# selectors: an LLM reads straight through them, a substring match does not.
_INVISIBLE = [
    *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
    *range(0x200B, 0x2010),  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    *range(0x2060, 0x2070),  # word joiner, invisible operators, deprecated format chars
    *range(0xFE00, 0xFE10),  # variation selectors
    *range(0xE0100, 0xE01F0),  # variation selectors supplement
]
# Embedding, override and isolate controls that reorder what a person sees.
_BIDI = [0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069]
_TAG_BASE = 0xE0000  # Unicode tag characters: invisible ASCII ("ASCII smuggling")

_STRIP_TABLE: dict[int, None] = dict.fromkeys(_INVISIBLE + _BIDI)
# Every character that strip_invisible acts on: most texts hold none and skip the work.
_HIDDEN = frozenset(chr(c) for c in (*_STRIP_TABLE, *range(0xE0000, 0xE0080)))
_TAG_RE = re.compile("[\U000e0020-\U000e007e]+")
_B64_RE = re.compile(rf"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{{{MIN_B64},}}={{0,2}}")
_HEX_RE = re.compile(rf"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{{2}}[ :]?){{{MIN_HEX_BYTES},}}")
_HEX_ESC_RE = re.compile(rf"(?:\\x[0-9A-Fa-f]{{2}}){{{MIN_HEX_BYTES},}}")
_PCT_RE = re.compile(r"(?:%[0-9A-Fa-f]{2}[^%\s]{0,3}){6,}")
_WORD_RE = re.compile(r"\w+")
# A token of 3-40 letters, digits and symbols holding both a letter and a leet substitute;
# the lookaheads are bounded, so this stays linear.
_LEET_TOKEN_RE = re.compile(
    r"(?<![A-Za-z0-9@$|!])(?=[A-Za-z0-9@$|!]{0,39}[A-Za-z])(?=[A-Za-z0-9@$|!]{0,39}[0134578@$|!])"
    r"[A-Za-z0-9@$|!]{3,40}(?![A-Za-z0-9@$|!])"
)
_NOT_ASCII_LETTER = bytes(b for b in range(256) if not chr(b).isascii() or not chr(b).isalpha())
_ROT13_HINT = re.compile(r"rot[\s_-]?13|caesar|rotate each letter", re.IGNORECASE)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "8": "b", "@": "a", "$": "s", "|": "l", "!": "i"})
# Words common in English instructions: a decoding is kept when it reads as text.
_COMMON = frozenset(
    (
        "the", "a", "an", "and", "or", "to", "of", "in", "on", "for", "is", "are", "be", "you",
        "your", "all", "any", "previous", "prior", "above", "instructions", "instruction", "ignore",
        "forget", "disregard", "say", "print", "tell", "me", "now", "from", "this", "that", "with",
        "what", "system", "prompt", "password", "secret", "reveal", "output", "write", "do", "not",
        "new", "rules", "mode",
    )
)


@dataclass(frozen=True, slots=True)
class Normalized:
    """The text as a model would read it, plus every hidden payload found inside it."""

    text: str  # invisible characters removed, NFKC, homoglyphs in mixed-script words folded
    payloads: tuple[str, ...] = ()  # decoded base64 / hex / rot13 / leetspeak / tag text
    signals: frozenset[str] = field(default_factory=frozenset)  # which disguises were seen

    def views(self) -> tuple[str, ...]:
        """Everything a detector should read: the text first, then each payload."""
        return (self.text, *self.payloads)


@lru_cache(maxsize=1)
def _confusable_table() -> dict[int, str]:
    """Map each non-ASCII homoglyph of an ASCII letter or digit to that letter.

    Built from the Unicode confusables data that ``confusable_homoglyphs`` ships, so the
    table follows Unicode's, not a hand-made list.
    """
    table: dict[int, str] = {}
    data = confusables.confusables_data
    for char, entries in data.items():
        if len(char) != 1:
            continue
        for entry in entries:
            glyph = entry["c"]
            if char.isascii() and char.isalnum() and len(glyph) == 1 and not glyph.isascii():
                table.setdefault(ord(glyph), char)
            elif (not char.isascii()) and len(glyph) == 1 and glyph.isascii() and glyph.isalnum():
                table.setdefault(ord(char), glyph)
    return table


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.isascii():
        return word
    has_ascii = any(c.isascii() and c.isalpha() for c in word)
    table = _confusable_table()
    # A word of only look-alikes (Cyrillic "ѕуѕtеm") is folded only when every letter has an
    # ASCII twin; genuine Russian words almost never do.
    if not has_ascii and (len(word) < 3 or any(ord(c) not in table for c in word)):
        return word
    folded = word.translate(table)
    return folded


@lru_cache(maxsize=1)
def _confusable_chars() -> frozenset[str]:
    """Every character that has an ASCII twin: text without one has nothing to fold."""
    return frozenset(chr(c) for c in _confusable_table())


def fold_confusables(text: str) -> tuple[str, bool]:
    """Fold homoglyphs inside words that mix scripts; genuine non-Latin words stay."""
    if text.isascii() or _confusable_chars().isdisjoint(text):
        return text, False
    folded = _WORD_RE.sub(_fold_word, text)
    return folded, folded != text


def strip_invisible(text: str) -> tuple[str, set[str], str]:
    """Remove invisible and bidi characters; return the text, signals, and tag payload."""
    signals: set[str] = set()
    hidden = ""
    if text.isascii() or _HIDDEN.isdisjoint(text):
        return text, signals, hidden
    tags = _TAG_RE.findall(text)
    if tags:
        hidden = "".join(chr(ord(c) - _TAG_BASE) for c in "".join(tags))[:MAX_PAYLOAD_CHARS]
        signals.add("tag_characters")
        text = _TAG_RE.sub("", text)
    stripped = text.translate(_STRIP_TABLE)
    if len(stripped) != len(text):
        if any(ord(c) in _BIDI for c in text):
            signals.add("bidi_controls")
        if any(ord(c) in _STRIP_TABLE and ord(c) not in _BIDI for c in text):
            signals.add("invisible_characters")
    # Any remaining tag-block characters (language tags, cancel tag) carry nothing.
    stripped = "".join(c for c in stripped if not 0xE0000 <= ord(c) <= 0xE007F) if (
        "\U000e0001" in stripped or "\U000e007f" in stripped
    ) else stripped
    return stripped, signals, hidden


def _readable(data: bytes) -> str | None:
    """Decoded bytes count as a payload only when they read as text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < 0.5 * len(text.replace(" ", "")):
        return None
    return text


def _english_hits(text: str) -> int:
    return sum(1 for w in _WORD_RE.findall(text.lower()) if w in _COMMON)


def _decode_b64(text: str) -> list[str]:
    found: list[str] = []
    for match in _B64_RE.finditer(text):
        run = match.group(0)
        if len(run) > MAX_PAYLOAD_CHARS or not any(c.isdigit() or c.isupper() for c in run):
            continue
        if run.isalpha() and run.islower():
            continue
        raw = run.replace("-", "+").replace("_", "/").rstrip("=")
        raw += "=" * (-len(raw) % 4)
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _readable(data)
        if decoded is not None:
            found.append(decoded)
        if len(found) >= MAX_PAYLOADS:
            break
    return found


def _decode_hex(text: str) -> list[str]:
    found: list[str] = []
    for regex, strip in ((_HEX_RE, " :"), (_HEX_ESC_RE, "\\x")):
        for match in regex.finditer(text):
            run = match.group(0)
            if len(run) > MAX_PAYLOAD_CHARS:
                continue
            digits = "".join(c for c in run if c not in strip)
            if regex is _HEX_ESC_RE:
                digits = run.replace("\\x", "")
            if len(digits) % 2:
                digits = digits[:-1]
            try:
                decoded = _readable(bytes.fromhex(digits))
            except ValueError:
                continue
            if decoded is not None:
                found.append(decoded)
            if len(found) >= MAX_PAYLOADS:
                return found
    return found


def _decode_percent(text: str) -> list[str]:
    found: list[str] = []
    for match in _PCT_RE.finditer(text):
        run = match.group(0)[:MAX_PAYLOAD_CHARS]
        decoded = unquote(run)
        if decoded != run and _english_hits(decoded) >= 2:
            found.append(decoded)
        if len(found) >= MAX_PAYLOADS:
            break
    return found


def _decode_rot13(text: str) -> list[str]:
    sample = text[:MAX_PAYLOAD_CHARS]
    letters = len(sample.encode("ascii", "ignore").translate(None, _NOT_ASCII_LETTER))
    if letters < 12:
        return []
    before = _english_hits(sample)
    if before * 5 >= letters / 6:  # already reads as English: about one word in five is common
        return []
    rotated = codecs.decode(sample, "rot13")
    after = _english_hits(rotated)
    if (after >= 3 and after > 2 * before) or (_ROT13_HINT.search(sample) and after > before):
        return [rotated]
    return []


def _unleet(match: re.Match[str]) -> str:
    return match.group(0).translate(_LEET)


def _decode_leet(text: str) -> list[str]:
    sample = text[:MAX_PAYLOAD_CHARS]
    if len(_LEET_TOKEN_RE.findall(sample)) < 2:
        return []
    plain = _LEET_TOKEN_RE.sub(_unleet, sample)
    if plain != sample and _english_hits(plain) > _english_hits(sample):
        return [plain]
    return []


_DECODERS = (
    ("base64", _decode_b64),
    ("hex", _decode_hex),
    ("percent", _decode_percent),
    ("rot13", _decode_rot13),
    ("leetspeak", _decode_leet),
)


def _basic(text: str) -> tuple[str, set[str], str]:
    stripped, signals, hidden = strip_invisible(text)
    nfkc = unicodedata.normalize("NFKC", stripped)
    if nfkc != stripped:
        signals.add("compatibility_forms")
    folded, changed = fold_confusables(nfkc)
    if changed:
        signals.add("homoglyphs")
    return folded, signals, hidden


def normalize(text: str) -> Normalized:
    """Normalise ``text`` and decode the payloads hidden in it, within fixed bounds."""
    base, signals, hidden = _basic(text)
    payloads: list[str] = []
    budget = MAX_DECODED_TOTAL
    frontier: list[str] = [base]
    if hidden:
        tag_text, tag_signals, _ = _basic(hidden)
        payloads.append(tag_text)
        frontier.append(tag_text)
        budget -= len(tag_text)
        signals |= tag_signals
    seen = {base, *payloads}
    for depth in range(MAX_DEPTH):
        next_frontier: list[str] = []
        for source in frontier:
            for name, decoder in _DECODERS:
                if name == "leetspeak" and depth > 0:
                    continue
                for decoded in decoder(source):
                    if budget <= 0 or len(payloads) >= MAX_PAYLOADS:
                        break
                    clean, sub_signals, _ = _basic(decoded[:budget])
                    if clean in seen:
                        continue
                    seen.add(clean)
                    signals |= sub_signals
                    signals.add(name if depth == 0 else f"{name}_nested")
                    payloads.append(clean)
                    next_frontier.append(clean)
                    budget -= len(clean)
        frontier = next_frontier
        if not frontier:
            break
    return Normalized(text=base, payloads=tuple(payloads), signals=frozenset(signals))
