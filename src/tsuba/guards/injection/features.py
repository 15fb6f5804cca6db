"""Hashed n-gram features, one function shared by training and inference.

Training calls exactly this code, so the shipped weights and the runtime can never disagree
about what a feature is.  Hashing is deterministic (no per-process salt) and vectorised:
character n-grams are rolling polynomial hashes over code points, and word n-grams are the
same polynomial hash over each token's span, taken from prefix sums (the base is odd, so it
has an inverse modulo 2**64), so no Python code runs per character or per token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

BITS = 18
N_HASHED = 1 << BITS
CHAR_NS = (3, 4, 5)
_SPACE_RE = re.compile(r"\s+")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of multiply-shift hashing
_BASE = np.uint64(0x100000001B3)
_SHIFT = np.uint64(64 - BITS)
_BASE_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_SEEDS = {n: np.uint64(0x51ED270B27A5_0000 + n) for n in (*CHAR_NS, 101, 102)}

# Dense features after the hashed block: rule hits, disguises, the source of the text.
SOURCES = ("user", "document", "tool")
SIGNALS = (
    "payload",
    "base64",
    "hex",
    "percent",
    "rot13",
    "leetspeak",
    "nested",
    "tag_characters",
    "invisible_characters",
    "bidi_controls",
    "homoglyphs",
    "compatibility_forms",
)


def dense_names(rule_names: Sequence[str]) -> tuple[str, ...]:
    return (
        *(f"rule:{name}" for name in rule_names),
        *(f"signal:{name}" for name in SIGNALS),
        *(f"source:{name}" for name in SOURCES),
    )


Indices = npt.NDArray[np.int32]
Values = npt.NDArray[np.float32]


def prepare(text: str) -> str:
    """Lower-case and collapse whitespace: layout carries no signal, words do."""
    return _SPACE_RE.sub(" ", text.lower()).strip()


def _char_ngrams(text: str) -> Indices:
    if not text:
        return np.zeros(0, dtype=np.int32)
    codes = np.frombuffer((" " + text + " ").encode("utf-32-le"), dtype=np.uint32)
    h = codes.astype(np.uint64)
    parts: list[Indices] = []
    with np.errstate(over="ignore"):
        # Extend the (n-1)-gram hashes by one character to get the n-gram hashes.
        for n in range(2, max(CHAR_NS) + 1):
            if h.size < 2:
                break
            h = h[:-1] * _BASE + codes[n - 1 :].astype(np.uint64)
            if n in CHAR_NS:
                parts.append((((h + _SEEDS[n]) * _MIX) >> _SHIFT).astype(np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _powers(base: np.uint64, n: int) -> npt.NDArray[np.uint64]:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(out, dtype=np.uint64)


def _word_ngrams(text: str) -> Indices:
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return np.zeros(0, dtype=np.int32)
    # Tokens hold no whitespace, so one space joins them without ambiguity.
    codes = np.frombuffer(" ".join(tokens).encode("utf-32-le"), dtype=np.uint32)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    ends = np.cumsum(lengths + 1) - 1
    starts = ends - lengths
    with np.errstate(over="ignore"):
        # prefix[i] = sum(codes[j] * BASE**-j for j < i); a span's hash is
        # BASE**(end-1) * (prefix[end] - prefix[start]) = sum(codes[j] * BASE**(end-1-j)).
        prefix = np.zeros(codes.size + 1, dtype=np.uint64)
        np.cumsum(codes.astype(np.uint64) * _powers(_BASE_INV, codes.size), out=prefix[1:])
        uni = _powers(_BASE, codes.size)[ends - 1] * (prefix[ends] - prefix[starts])
        h1 = (uni + _SEEDS[101]) * _MIX
        if uni.size > 1:
            h2 = (uni[:-1] * _BASE + uni[1:] + _SEEDS[102]) * _MIX
            h = np.concatenate((h1, h2))
        else:
            h = h1
    return (h >> _SHIFT).astype(np.int32)


def _distinct(idx: Indices) -> Indices:
    if idx.size < 2:
        return idx
    idx = np.sort(idx)
    keep = np.empty(idx.size, dtype=bool)
    keep[0] = True
    np.not_equal(idx[1:], idx[:-1], out=keep[1:])
    return idx[keep]


def hashed(texts: Iterable[str]) -> tuple[Indices, Values]:
    """Indices and weights of the hashed n-grams of ``texts`` (already ``prepare``-d).

    Each family is scaled by 1/sqrt(count of distinct n-grams), its L2 norm, so long and
    short texts land on the same scale.
    """
    chars = [_char_ngrams(t) for t in texts]
    words = [_word_ngrams(t) for t in texts]
    # Presence, not counts: a table or a word repeated a thousand times must not add up.
    char_idx = _distinct(np.concatenate(chars)) if chars else np.zeros(0, dtype=np.int32)
    word_idx = _distinct(np.concatenate(words)) if words else np.zeros(0, dtype=np.int32)
    values: list[Values] = []
    for idx in (char_idx, word_idx):
        scale = 1.0 / np.sqrt(idx.size) if idx.size else 0.0
        values.append(np.full(idx.size, scale, dtype=np.float32))
    return np.concatenate((char_idx, word_idx)), np.concatenate(values)
