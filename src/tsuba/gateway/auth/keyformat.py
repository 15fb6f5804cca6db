"""The text of an API key: ``tsk_<prefix id>_<secret>``, both parts base62.

The prefix id is public (it is how a key is named in lists, logs and events, and how it is
found in storage); the secret is 32 random bytes.  Base62 keeps the key one "word" for
double-click selection and free of characters that need quoting in shells or URLs.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

SCHEME = "tsk"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX_BYTES = 9  # 72 bits: collisions stay negligible, the unique index catches the rest
SECRET_BYTES = 32
PREFIX_CHARS = 13  # ceil(72 / log2(62))
SECRET_CHARS = 43  # ceil(256 / log2(62))
PREFIX_RE = re.compile(rf"{SCHEME}_[0-9A-Za-z]{{{PREFIX_CHARS}}}")
_KEY_RE = re.compile(rf"({SCHEME}_[0-9A-Za-z]{{{PREFIX_CHARS}}})_([0-9A-Za-z]{{{SECRET_CHARS}}})")


def base62(data: bytes, width: int) -> str:
    number = int.from_bytes(data, "big")
    chars: list[str] = []
    while number:
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars)).rjust(width, "0")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    prefix: str  # "tsk_" + prefix id: the key's public name
    secret: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"ParsedKey(prefix={self.prefix!r}, secret=<hidden>)"


def new_key() -> ParsedKey:
    return ParsedKey(
        prefix=f"{SCHEME}_{base62(secrets.token_bytes(PREFIX_BYTES), PREFIX_CHARS)}",
        secret=base62(secrets.token_bytes(SECRET_BYTES), SECRET_CHARS),
    )


def format_key(key: ParsedKey) -> str:
    return f"{key.prefix}_{key.secret}"


def parse_key(text: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None (never raises: input is attacker-chosen)."""
    match = _KEY_RE.fullmatch(text)
    if match is None:
        return None
    return ParsedKey(prefix=match.group(1), secret=match.group(2))


def looks_like_api_key(text: str) -> bool:
    return text.startswith(f"{SCHEME}_")


def is_prefix(text: str) -> bool:
    return PREFIX_RE.fullmatch(text) is not None
