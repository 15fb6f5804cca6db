"""Field access and matching over events, compiled once per rule so matching stays cheap.

A field is a top-level event field (``class``, ``activity``, ``outcome``, ``severity``,
``actor``, ``resource``, ``src_ip``, ``message``, ``correlation_id``, ``id``), the derived
``src_net`` (the /24 or /48 network of ``src_ip``), or a path into the attributes
(``attributes.finding.guard``, or just ``finding.guard``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from tsuba.core.errors import InputError
from tsuba.core.events import SecurityEvent, Severity

Getter = Callable[[SecurityEvent], Any]
Predicate = Callable[[SecurityEvent], bool]

_MISSING = object()


def _src_net(event: SecurityEvent) -> str | None:
    return _network(event.src_ip) if event.src_ip else None


@functools.lru_cache(maxsize=65_536)
def _network(ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) of an address; None for what is not an address."""
    parts = ip.split(".")
    if len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    ):  # dotted IPv4, the common case, without the cost of ipaddress
        return f"{int(parts[0])}.{int(parts[1])}.{int(parts[2])}.0/24"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


_TOP: dict[str, Getter] = {
    "id": lambda e: e.id,
    # StrEnum members equal and hash as their values: no ``.value`` lookup per event.
    "class": lambda e: e.event_class,
    "activity": lambda e: e.activity,
    "outcome": lambda e: e.outcome,
    "severity": lambda e: int(e.severity),
    "actor": lambda e: e.actor,
    "resource": lambda e: e.resource,
    "src_ip": lambda e: e.src_ip,
    "message": lambda e: e.message,
    "correlation_id": lambda e: e.correlation_id,
    "src_net": _src_net,
}


def getter(path: str) -> Getter:
    """A function reading ``path`` from an event; a missing attribute reads as None."""
    if path in _TOP:
        return _TOP[path]
    parts = path.split(".")
    if parts[0] == "attributes":
        parts = parts[1:]
    if not parts or not all(parts):
        raise InputError(f"field {path!r} is not a field name or an attributes path")
    if len(parts) == 1:
        key = parts[0]
        return lambda e: e.attributes.get(key)

    def walk(event: SecurityEvent) -> Any:
        value: Any = event.attributes
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return None
        return value

    return walk


def _number(value: Any, field: str) -> float:
    if field == "severity" and isinstance(value, str):
        try:
            return float(Severity.parse(value))
        except ValueError as exc:
            raise InputError(f"{field}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{field}: comparison needs a number, got {value!r}")
    return float(value)


def _normal(value: Any, field: str) -> Any:
    """Severity names become their numbers so ``severity: high`` works."""
    if field == "severity" and isinstance(value, str):
        return int(_number(value, field))
    return value


def _as_num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _eq(field: str, get: Getter, arg: Any) -> Predicate:
    want = _normal(arg, field)
    return lambda e: get(e) == want


def _in(field: str, get: Getter, arg: Any, *, negate: bool = False) -> Predicate:
    if not isinstance(arg, list):
        raise InputError(f"{field}: '{'not_in' if negate else 'in'}' needs a list")
    values = {_normal(v, field) for v in arg if not isinstance(v, dict | list)}
    return lambda e: (_hashable(get(e)) in values) is not negate


def _contains(field: str, get: Getter, arg: Any) -> Predicate:
    def contains(e: SecurityEvent) -> bool:
        value = get(e)
        if isinstance(value, str):
            return isinstance(arg, str) and arg in value
        if isinstance(value, list | dict):
            return arg in value
        return False

    return contains


def _affix(field: str, get: Getter, arg: Any, *, start: bool) -> Predicate:
    if not isinstance(arg, str):
        raise InputError(f"{field}: '{'startswith' if start else 'endswith'}' needs a string")

    def affix(e: SecurityEvent) -> bool:
        value = get(e)
        if not isinstance(value, str):
            return False
        return value.startswith(arg) if start else value.endswith(arg)

    return affix


def _regex(field: str, get: Getter, arg: Any) -> Predicate:
    if not isinstance(arg, str):
        raise InputError(f"{field}: 'regex' needs a string")
    try:
        pattern = re.compile(arg)
    except re.error as exc:
        raise InputError(f"{field}: invalid regex {arg!r}: {exc}") from None

    def search(e: SecurityEvent) -> bool:
        value = get(e)
        return isinstance(value, str) and pattern.search(value) is not None

    return search


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda x, b: x > b,
    "gte": lambda x, b: x >= b,
    "lt": lambda x, b: x < b,
    "lte": lambda x, b: x <= b,
}


def _compare(field: str, get: Getter, arg: Any, op: str) -> Predicate:
    bound = _number(arg, field)
    compare = _COMPARE[op]

    def check(e: SecurityEvent) -> bool:
        value = _as_num(get(e))
        return value is not None and compare(value, bound)

    return check


def _exists(field: str, get: Getter, arg: Any) -> Predicate:
    if not isinstance(arg, bool):
        raise InputError(f"{field}: 'exists' needs true or false")
    return lambda e: (get(e) is not None) is arg


def _not(field: str, get: Getter, arg: Any) -> Predicate:
    inner = condition(field, arg)
    return lambda e: not inner(e)


_Builder = Callable[[str, Getter, Any], Predicate]
_OPERATORS: dict[str, _Builder] = {
    "eq": _eq,
    "in": _in,
    "not_in": lambda f, g, a: _in(f, g, a, negate=True),
    "contains": _contains,
    "startswith": lambda f, g, a: _affix(f, g, a, start=True),
    "endswith": lambda f, g, a: _affix(f, g, a, start=False),
    "regex": _regex,
    "gt": lambda f, g, a: _compare(f, g, a, "gt"),
    "gte": lambda f, g, a: _compare(f, g, a, "gte"),
    "lt": lambda f, g, a: _compare(f, g, a, "lt"),
    "lte": lambda f, g, a: _compare(f, g, a, "lte"),
    "exists": _exists,
    "not": _not,
}


def _operator(field: str, get: Getter, op: str, arg: Any) -> Predicate:
    build = _OPERATORS.get(op)
    if build is None:
        raise InputError(
            f"{field}: unknown operator {op!r} (one of {', '.join(_OPERATORS)})"
        )
    return build(field, get, arg)


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, dict | list) else None


def condition(field: str, spec: Any) -> Predicate:
    """One field's condition: a scalar (equals), a list (any of), or a dict of operators."""
    get = getter(field)
    if isinstance(spec, list):
        return _operator(field, get, "in", spec)
    if isinstance(spec, dict):
        if not spec:
            raise InputError(f"{field}: an empty condition matches nothing; name an operator")
        return _all([_operator(field, get, str(op), arg) for op, arg in spec.items()])
    return _operator(field, get, "eq", spec)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda e: a(e) and b(e)


def _all(preds: list[Predicate]) -> Predicate:
    """Conditions chained pairwise: cheaper per event than ``all()`` over a generator."""
    combined = preds[0]
    for pred in preds[1:]:
        combined = _both(combined, pred)
    return combined


def _any(alternatives: list[Predicate]) -> Predicate:
    return lambda e: any(a(e) for a in alternatives)


def _negate(inner: Predicate) -> Predicate:
    return lambda e: not inner(e)


def compile_match(
    spec: Any, where: str = "match", *, skip: frozenset[str] = frozenset()
) -> Predicate:
    """A match block: every field condition holds; ``any`` (a list of blocks) and ``not``."""
    if not isinstance(spec, dict) or not spec:
        raise InputError(f"{where}: must be a non-empty mapping of field to condition")
    preds: list[Predicate] = []
    for key, value in spec.items():
        if key == "any":
            if not isinstance(value, list) or not value:
                raise InputError(f"{where}.any: must be a non-empty list of match blocks")
            preds.append(_any([compile_match(v, f"{where}.any[{i}]")
                               for i, v in enumerate(value)]))
        elif key == "not":
            preds.append(_negate(compile_match(value, f"{where}.not")))
        elif key not in skip:
            preds.append(condition(str(key), value))
    if not preds:
        return lambda e: True
    return _all(preds)


def match_classes(spec: Any) -> frozenset[str] | None:
    """The event classes a match block can match, so the engine skips the rest; None = all."""
    if not isinstance(spec, dict):
        return None
    value = spec.get("class")
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    if isinstance(value, dict):
        inner = value.get("in", value.get("eq"))
        if isinstance(inner, str):
            return frozenset({inner})
        if isinstance(inner, list) and all(isinstance(v, str) for v in inner) and len(value) == 1:
            return frozenset(inner)
    return None
