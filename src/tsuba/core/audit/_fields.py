"""Strict readers for the fields of exported JSON: wrong types or encodings are InputErrors.

Hashes and signatures are lowercase hex; entry bytes are standard base64 with padding.
Being strict keeps one byte string to one text, so nothing can hide in alternative spellings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from tsuba.core.errors import InputError

_HEX = re.compile(r"[0-9a-f]*")
MAX_SIZE = 2**63 - 1

JsonInput = str | bytes | Mapping[str, Any]


def load_object(raw: JsonInput, what: str) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object")
    return data


def check_keys(
    data: Mapping[str, Any], what: str, required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    missing = required - data.keys()
    if missing:
        raise InputError(f"{what} lacks {', '.join(sorted(missing))}")
    unknown = data.keys() - required - optional
    if unknown:
        raise InputError(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")


def check_format(data: Mapping[str, Any], what: str, expected: str) -> None:
    got = data.get("format")
    if got != expected:
        raise InputError(f"{what} has format {got!r}; this verifier reads {expected!r}")


def get_int(data: Mapping[str, Any], key: str, what: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        raise InputError(f"{what}: '{key}' must be an integer from 0 to {MAX_SIZE}")
    return value


def get_str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise InputError(f"{what}: '{key}' must be a string")
    return value


def get_hex(data: Mapping[str, Any], key: str, what: str, size: int | None = None) -> bytes:
    return parse_hex(data[key], f"{what}: '{key}'", size)


def parse_hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
        raise InputError(f"{what} must be lowercase hex")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise InputError(f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def get_hex_list(data: Mapping[str, Any], key: str, what: str, size: int) -> list[bytes]:
    value = data[key]
    if not isinstance(value, list):
        raise InputError(f"{what}: '{key}' must be a list of hex hashes")
    return [parse_hex(v, f"{what}: '{key}'[{i}]", size) for i, v in enumerate(value)]


def get_b64(data: Mapping[str, Any], key: str, what: str) -> bytes:
    value = data[key]
    if not isinstance(value, str):
        raise InputError(f"{what}: '{key}' must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{what}: '{key}' is not valid base64: {exc}") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise InputError(f"{what}: '{key}' is not canonical base64")
    return raw


def get_object(data: Mapping[str, Any], key: str, what: str) -> dict[str, Any]:
    value = data[key]
    if not isinstance(value, dict):
        raise InputError(f"{what}: '{key}' must be a JSON object")
    return value
