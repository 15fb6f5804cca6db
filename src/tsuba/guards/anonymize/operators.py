"""Anonymization operators: what replaces a finding's text.

``Redact``, ``Mask`` and ``Replace`` are pure.  ``Hash`` (HMAC) and ``Encrypt`` (envelope,
reversible with :func:`tsuba.guards.anonymize.deanonymize`) take a key manager: keys never
leave the key store, and an encrypted token carries everything needed to decrypt it except
the key.  Unlike an unauthenticated cipher mode, a modified token fails to decrypt.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyManager

ENC_TOKEN = re.compile(r"<([A-Z][A-Z0-9_]{0,63}):enc:([A-Za-z0-9_\-]{40,8000})>")
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{0,63})_([1-9][0-9]{0,6})>")
_ENC_AAD = b"tsuba-anonymize/v1\x00"
DEFAULT_HASH_KEY = "pseudonym"

# What the caller gives the session-consistent numbering: (entity_type, value) -> placeholder.
Assigner = Callable[[str, str], str]


class Operator(Protocol):
    """Turns one finding's text into its replacement."""

    @property
    def name(self) -> str: ...

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str: ...


@dataclass(frozen=True)
class Redact:
    """Remove the value; ``text`` (empty by default) stands in its place."""

    text: str = ""
    name: str = "redact"

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str:
        return self.text


@dataclass(frozen=True)
class Mask:
    """Hide all but the last ``keep_last`` characters; separators stay so the shape reads."""

    keep_last: int = 4
    char: str = "*"
    keep: str = " -./@"
    name: str = "mask"

    def __post_init__(self) -> None:
        if self.keep_last < 0 or len(self.char) != 1:
            raise ValueError("mask needs keep_last >= 0 and a single mask character")

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str:
        shown = 0
        out = []
        for ch in reversed(value):
            if ch in self.keep:
                out.append(ch)
            elif shown < self.keep_last:
                out.append(ch)
                shown += 1
            else:
                out.append(self.char)
        return "".join(reversed(out))


@dataclass(frozen=True)
class Replace:
    """``<TYPE>``, or ``<TYPE_n>`` numbered consistently within a session when ``numbered``."""

    numbered: bool = True
    name: str = "replace"

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str:
        return assign(entity_type, value) if self.numbered else f"<{entity_type}>"


@dataclass(frozen=True)
class Hash:
    """A keyed hash (HMAC-SHA256 in the key store): equal values give equal pseudonyms.

    Without the key nobody can test a guess (a plain hash of a phone number is reversed by
    trying every number); ``chars`` hex characters are kept (32 = 128 bits by default).
    """

    keys: KeyManager = field(repr=False)
    key_name: str = DEFAULT_HASH_KEY
    chars: int = 32
    name: str = "hash"

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str:
        digest = self.keys.hmac(self.key_name, entity_type.encode() + b"\x00" + value.encode())
        return digest.hex()[: self.chars]


@dataclass(frozen=True)
class Encrypt:
    """Envelope-encrypt the value into a ``<TYPE:enc:...>`` token that deanonymize reverses."""

    keys: KeyManager = field(repr=False)
    kek: str = envelope.DEFAULT_KEK
    aad: bytes = b""
    name: str = "encrypt"

    def apply(self, value: str, entity_type: str, assign: Assigner) -> str:
        blob = envelope.encrypt(self.keys, self.kek, value.encode(), enc_aad(entity_type, self.aad))
        token = base64.urlsafe_b64encode(blob).rstrip(b"=").decode()
        return f"<{entity_type}:enc:{token}>"


def enc_aad(entity_type: str, aad: bytes) -> bytes:
    """Associated data of an encrypted token: its type is bound, so relabelling fails."""
    return _ENC_AAD + entity_type.encode() + b"\x00" + aad


def decode_token(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
