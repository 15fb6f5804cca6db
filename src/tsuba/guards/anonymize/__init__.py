"""Anonymization: rewrite findings with operators, restore pseudonyms, even mid-stream.

``anonymize(text, findings, operators)`` applies one operator per entity type (or one for
all).  Numbered placeholders (``<PERSON_1>``) come from a :class:`MappingStore` keyed by a
session, so the same value gets the same placeholder across the turns of a conversation and
across gateway workers when the store is shared (``store.SqlMappingStore`` in the database,
``redis_store.RedisMappingStore`` in Redis).  ``deanonymize``
puts real values back (placeholders from the store, ``<TYPE:enc:...>`` tokens through the key
store); :class:`StreamRestorer` does it for a response arriving in chunks, holding back only
a possible placeholder prefix cut at a chunk boundary.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tsuba.core.errors import DecryptionError, InputError
from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyManager
from tsuba.guards.anonymize.operators import (
    ENC_TOKEN,
    PLACEHOLDER,
    Encrypt,
    Hash,
    Mask,
    Operator,
    Redact,
    Replace,
    decode_token,
    enc_aad,
)
from tsuba.guards.types import Finding, resolve_overlaps


class MappingStore(Protocol):
    """Where a session's placeholders and their values live."""

    def placeholder_for(self, session: str, entity_type: str, value: str) -> str:
        """The session's placeholder for ``value``, assigning the next number if new."""
        ...

    def mapping(self, session: str) -> dict[str, str]:
        """Every live placeholder of the session and its value."""
        ...

    def touch(self, session: str) -> int:
        """Keep the session's placeholders for another TTL from now; 0 if it has none."""
        ...

    def drop(self, session: str) -> int:
        """Forget the session's placeholders now; how many were forgotten."""
        ...


class MemoryMappingStore:
    """A per-process store: for tests and single-process tools, not for a gateway fleet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[tuple[str, str, str], str] = {}
        self._values: dict[str, dict[str, str]] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def placeholder_for(self, session: str, entity_type: str, value: str) -> str:
        with self._lock:
            key = (session, entity_type, value)
            found = self._by_value.get(key)
            if found is None:
                n = self._counts.get((session, entity_type), 0) + 1
                self._counts[(session, entity_type)] = n
                found = f"<{entity_type}_{n}>"
                self._by_value[key] = found
                self._values.setdefault(session, {})[found] = value
            return found

    def mapping(self, session: str) -> dict[str, str]:
        with self._lock:
            return dict(self._values.get(session, {}))

    def touch(self, session: str) -> int:
        with self._lock:
            return len(self._values.get(session, {}))  # nothing here expires

    def drop(self, session: str) -> int:
        with self._lock:
            dropped = len(self._values.pop(session, {}))
            for key in [k for k in self._by_value if k[0] == session]:
                del self._by_value[key]
            for ckey in [k for k in self._counts if k[0] == session]:
                del self._counts[ckey]
            return dropped


@dataclass(frozen=True, slots=True)
class Replacement:
    """Where an operator wrote into the anonymized text, and what it replaced."""

    start: int
    end: int
    entity_type: str
    operator: str


@dataclass(frozen=True, slots=True)
class Anonymized:
    text: str
    items: tuple[Replacement, ...]


def anonymize(
    text: str,
    findings: Iterable[Finding],
    operators: Operator | Mapping[str, Operator] | None = None,
    *,
    session: str | None = None,
    store: MappingStore | None = None,
) -> Anonymized:
    """``text`` with every finding replaced by its operator's output.

    ``operators`` maps entity types to operators (key ``"DEFAULT"`` for the rest) or is one
    operator for all; the default numbers placeholders.  Overlapping findings are resolved
    first.  Without a ``store`` numbering is consistent within this call only.
    """
    if operators is None:
        operators = Replace()
    if isinstance(operators, Mapping):
        table: Mapping[str, Operator] = operators
        default = operators.get("DEFAULT", Replace())
    else:
        table, default = {}, operators
    if store is not None and session is None:
        raise InputError("anonymize with a mapping store needs a session id")
    local = MemoryMappingStore() if store is None else store
    key = session or ""

    def assign(entity_type: str, value: str) -> str:
        return local.placeholder_for(key, entity_type, value)

    pieces: list[str] = []
    items: list[Replacement] = []
    pos = 0
    out_len = 0
    for f in resolve_overlaps(findings):
        if f.end > len(text):
            raise InputError(f"finding [{f.start}, {f.end}) lies outside the text")
        op = table.get(f.entity_type, default)
        before = text[pos : f.start]
        pieces.append(before)
        out_len += len(before)
        replacement = op.apply(text[f.start : f.end], f.entity_type, assign)
        pieces.append(replacement)
        items.append(Replacement(out_len, out_len + len(replacement), f.entity_type, op.name))
        out_len += len(replacement)
        pos = f.end
    pieces.append(text[pos:])
    return Anonymized("".join(pieces), tuple(items))


def deanonymize(
    text: str,
    *,
    mapping: Mapping[str, str] | None = None,
    keys: KeyManager | None = None,
    aad: bytes = b"",
    strict: bool = True,
) -> str:
    """Put real values back: placeholders from ``mapping``, encrypted tokens via ``keys``.

    A token that does not decrypt raises DecryptionError when ``strict`` (the default), so
    tampering is never silently passed on; placeholders missing from the mapping stay.
    """
    if keys is not None and "enc:" in text:

        def decrypt(match: re.Match[str]) -> str:
            entity_type, token = match.group(1), match.group(2)
            try:
                blob = decode_token(token)
                return envelope.decrypt(keys, blob, enc_aad(entity_type, aad)).decode()
            except (DecryptionError, InputError, ValueError, UnicodeDecodeError):
                if strict:
                    raise DecryptionError(
                        f"an encrypted {entity_type} token does not decrypt: wrong key, "
                        "wrong associated data or a modified token"
                    ) from None
                return match.group(0)

        text = ENC_TOKEN.sub(decrypt, text)
    if mapping:
        text = PLACEHOLDER.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)
    return text


class StreamRestorer:
    """Restores placeholders in a response that arrives in chunks.

    Text is released as soon as it cannot be the start of a placeholder; a ``<`` that might
    open one is held until the placeholder completes or the text proves otherwise, so a
    placeholder split across chunks (``"<PER"`` + ``"SON_1>"``) is still restored.
    Placeholder-shaped tokens the mapping lacks (invented by the model, or expired) stay as
    they are and are listed in ``unknown``.  ``escape`` rewrites each value before it is
    inserted (e.g. JSON string escaping for tool-call arguments).
    """

    MAX_HOLD = 80  # longer than any placeholder: "<" + 64-character type + "_" + 7 digits + ">"

    def __init__(
        self, mapping: Mapping[str, str], *, escape: Callable[[str], str] | None = None
    ) -> None:
        self._mapping = dict(mapping)
        self._escape = escape
        self._held = ""
        self.unknown: list[str] = []

    def feed(self, chunk: str) -> str:
        data = self._held + chunk
        cut = self._safe_prefix(data)
        self._held = data[cut:]
        return self._restore(data[:cut])

    def flush(self) -> str:
        data, self._held = self._held, ""
        return self._restore(data)

    def _restore(self, text: str) -> str:
        if "<" not in text:
            return text
        return restore(text, self._mapping, unknown=self.unknown, escape=self._escape)

    def _safe_prefix(self, data: str) -> int:
        """How much of ``data`` can be released: all but a trailing unfinished ``<...``."""
        lt = data.rfind("<")
        if lt == -1 or ">" in data[lt:]:
            return len(data)
        tail = data[lt + 1 :]
        if len(tail) >= self.MAX_HOLD or not _could_continue(tail):
            return len(data)
        return lt


def restore(
    text: str,
    mapping: Mapping[str, str],
    *,
    unknown: list[str] | None = None,
    escape: Callable[[str], str] | None = None,
) -> str:
    """``text`` with each placeholder of ``mapping`` replaced by its value.

    Placeholder-shaped tokens that ``mapping`` lacks are left and appended to ``unknown``.
    """

    def put(match: re.Match[str]) -> str:
        token = match.group(0)
        value = mapping.get(token)
        if value is None:
            if unknown is not None:
                unknown.append(token)
            return token
        return escape(value) if escape is not None else value

    return PLACEHOLDER.sub(put, text)


def _could_continue(tail: str) -> bool:
    """Whether ``<`` + ``tail`` can still grow into a placeholder like ``<PERSON_12>``."""
    if not tail:
        return True
    if not ("A" <= tail[0] <= "Z"):
        return False
    return all(c.isdigit() or c == "_" or "A" <= c <= "Z" for c in tail)


__all__ = [
    "Anonymized",
    "Encrypt",
    "Hash",
    "MappingStore",
    "Mask",
    "MemoryMappingStore",
    "Operator",
    "Redact",
    "Replace",
    "Replacement",
    "StreamRestorer",
    "anonymize",
    "deanonymize",
    "restore",
]
