"""Checking an OCSF event against the OCSF 1.8.0 schema before a SIEM sees it.

The schema comes from ``ocsf-json-schema``, which ships the official OCSF schema exports
(1.0 to 1.8) and turns a class with its profiles into a JSON Schema (draft 2020-12);
``jsonschema-rs`` applies it (compiled: about a hundred times the events per second of the
pure-Python ``jsonschema``, which matters on a forwarder's hot path).

``py-ocsf-models`` was the other candidate, but its 0.10 models cover only the Detection,
Compliance and Application Security Posture findings: no Authentication, API Activity or
Incident Finding, and no AI Operation profile, which first appears in OCSF 1.8.0.

JSON Schema catches missing required attributes, wrong types, values outside an enum,
attributes the class does not define (``additionalProperties`` is false) and profile
attributes used without the profile.  On top of it this module checks what JSON Schema
cannot say: ``type_uid`` is ``class_uid * 100 + activity_id``, every caption sibling
(``severity``, ``status``, ``activity_name``...) is the caption of its ``_id``, profiles
named in ``metadata.profiles`` exist, ``metadata.version`` is the version checked against,
and ``time`` is in epoch milliseconds.

Both libraries are imported on first use: commands that never validate stay fast.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from tsuba.core.errors import InputError
from tsuba.core.events import OCSF_VERSION

# Epoch milliseconds between 2000-01-01 and 2100-01-01: a value outside is seconds,
# microseconds or a clock far off, none of which a SIEM would place right.
_TIME_MIN, _TIME_MAX = 946_684_800_000, 4_102_444_800_000
_MAX_PROBLEMS = 20


class InvalidOcsfEvent(InputError):
    """An event that does not conform to the OCSF schema; ``problems`` says where."""

    def __init__(self, problems: list[str], uid: object = None) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        super().__init__(f"OCSF event {uid or '(no metadata.uid)'} does not conform to OCSF "
                         f"{OCSF_VERSION}: {shown}")


@functools.cache
def _schema() -> dict[str, Any]:
    from ocsf_json_schema import get_ocsf_schema  # noqa: PLC0415

    schema: dict[str, Any] = get_ocsf_schema(OCSF_VERSION)
    return schema


@functools.cache
def _classes_by_uid() -> dict[int, str]:
    return {int(c["uid"]): name for name, c in _schema()["classes"].items()}


@functools.cache
def _validator(class_name: str, profiles: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """The compiled validator of a class with these profiles, and its JSON Schema."""
    import jsonschema_rs  # noqa: PLC0415
    from ocsf_json_schema import OcsfJsonSchemaEmbedded  # noqa: PLC0415

    json_schema: dict[str, Any] = OcsfJsonSchemaEmbedded(_schema()).get_class_schema(
        class_name, list(profiles))
    return jsonschema_rs.validator_for(json_schema), json_schema


def known_profiles() -> frozenset[str]:
    return frozenset(_schema().get("profiles", {}))


def validate(event: Mapping[str, Any]) -> list[str]:
    """The ways ``event`` breaks the OCSF schema, one line each; empty when it conforms."""
    if not isinstance(event, Mapping):
        return ["the event is not a JSON object"]
    class_uid = event.get("class_uid")
    if not isinstance(class_uid, int) or isinstance(class_uid, bool):
        return ["class_uid: missing or not an integer"]
    class_name = _classes_by_uid().get(class_uid)
    if class_name is None:
        return [f"class_uid: {class_uid} is not an OCSF {OCSF_VERSION} class"]
    problems: list[str] = []
    metadata = event.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    version = metadata.get("version")
    if version is not None and version != OCSF_VERSION:
        problems.append(f"metadata.version: {version!r}, but the event is checked against "
                        f"OCSF {OCSF_VERSION}")
    profiles = _profiles(metadata.get("profiles"), problems)
    validator, json_schema = _validator(class_name, profiles)
    try:
        errors = list(validator.iter_errors(dict(event)))
    except ValueError as exc:  # not JSON data: a key that is not a string, say
        return [f"the event is not JSON data: {exc}"]
    problems.extend(_describe(error, class_name, json_schema) for error in errors)
    problems.extend(_semantics(event, class_name))
    return sorted(set(problems))[:_MAX_PROBLEMS] if problems else []


def check(event: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidOcsfEvent` naming every problem unless ``event`` conforms."""
    problems = validate(event)
    if problems:
        metadata = event.get("metadata") if isinstance(event, Mapping) else None
        uid = metadata.get("uid") if isinstance(metadata, Mapping) else None
        raise InvalidOcsfEvent(problems, uid)


def _profiles(value: object, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        problems.append("metadata.profiles: must be a list of profile names")
        return ()
    known = known_profiles()
    for name in value:
        if name not in known:
            problems.append(f"metadata.profiles: {name!r} is not an OCSF {OCSF_VERSION} "
                            "profile")
    return tuple(sorted({p for p in value if p in known}))


def _path(parts: Iterator[Any] | Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "event"


def _describe(error: Any, class_name: str, json_schema: dict[str, Any]) -> str:
    """One JSON Schema error in OCSF words."""
    where = _path(error.instance_path)
    kind = type(error.kind).__name__
    if kind == "AdditionalProperties":
        hints = [_profile_hint(where, name, class_name) for name in error.kind.unexpected]
        return f"{where}: {', '.join(hints)}"
    if kind == "Required":
        return f"{where}: {error.kind.property!r} is a required property"
    if kind in ("AnyOf", "OneOfNotValid", "OneOfMultipleValid"):
        options = _at(json_schema, error.schema_path)
        names = [o["required"][0] for o in options if isinstance(o, dict) and
                 len(o.get("required", ())) == 1] if isinstance(options, list) else []
        how = "at least one" if kind == "AnyOf" else "exactly one"
        if names:
            return f"{where}: needs {how} of {', '.join(names)}"
    if kind == "Enum" and isinstance(error.kind.options, list):
        options = error.kind.options
        try:
            options = sorted(options)
        except TypeError:
            options = sorted(options, key=str)
        allowed = ", ".join(str(o) for o in options)
        return f"{where}: {_clip(repr(error.instance), 80)} is not one of {allowed}"
    if kind == "Pattern":
        caption = _pattern_types().get(error.kind.pattern, "the OCSF pattern")
        return f"{where}: {_clip(repr(error.instance), 80)} is not a valid {caption}"
    return f"{where}: {_clip(error.message, 200)}"


def _at(document: Any, path: Any) -> Any:
    """The part of ``document`` at a JSON Schema path, or None."""
    for part in path:
        found = (isinstance(document, dict) and part in document) or (
            isinstance(document, list) and isinstance(part, int) and part < len(document))
        if not found:
            return None
        document = document[part]
    return document


def _clip(text: str, limit: int) -> str:
    """A problem stays one readable line, whatever the size of the value it quotes."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _pattern_types() -> dict[str, str]:
    """Each OCSF type's regex -> its caption ("IP Address"), to name a mismatch."""
    types = _schema()["dictionary"]["types"]["attributes"]
    return {t["regex"]: t.get("caption", name) for name, t in types.items() if "regex" in t}


def _profile_hint(where: str, name: str, class_name: str) -> str:
    attrs = _schema()["classes"][class_name]["attributes"] if where == "event" else {}
    profiles = attrs.get(name, {}).get("profiles") or []
    if profiles:
        return (f"{name!r} belongs to the OCSF profile {profiles[0]!r}: name it in "
                "metadata.profiles")
    return f"{name!r} is not an attribute OCSF defines here"


def _semantics(event: Mapping[str, Any], class_name: str) -> list[str]:
    problems: list[str] = []
    class_uid, activity_id = _whole(event.get("class_uid")), _whole(event.get("activity_id"))
    type_uid = event.get("type_uid")
    if class_uid is not None and activity_id is not None and \
            type_uid != class_uid * 100 + activity_id:
        problems.append(f"type_uid: {type_uid!r}, but class_uid * 100 + activity_id is "
                        f"{class_uid * 100 + activity_id}")
    time = _whole(event.get("time"))
    if time is not None and not _TIME_MIN <= time < _TIME_MAX:
        problems.append(f"time: {time} is not epoch milliseconds between 2000 and 2100")
    attrs = _schema()["classes"][class_name]["attributes"]
    problems.extend(_siblings(event, attrs, ""))
    return problems


def _whole(value: object) -> int | None:
    """An integer as JSON Schema counts them (``3`` or ``3.0``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _siblings(obj: Mapping[str, Any], attrs: Mapping[str, Any], where: str) -> list[str]:
    """Each caption (``status``) must be the caption of its id (``status_id``); for 99,
    Other, the caption is the source's own word and must be there if the id is."""
    problems: list[str] = []
    objects = _schema()["objects"]
    for name, value in obj.items():
        spec = attrs.get(name)
        if not isinstance(spec, Mapping):
            continue
        sibling, enum = spec.get("sibling"), spec.get("enum")
        number = _whole(value)
        if sibling and enum and number is not None and sibling in obj:
            caption = enum.get(str(number), {}).get("caption")
            given = obj[sibling]
            if number == 99:
                if not isinstance(given, str) or not given.strip():
                    problems.append(f"{where}{sibling}: {name} is 99 (Other), so {sibling} "
                                    "must name it")
            elif caption is not None and given != caption:
                problems.append(f"{where}{sibling}: {given!r} is not the caption of "
                                f"{name} {value} ({caption!r})")
        object_type = spec.get("object_type")
        if spec.get("type") == "object_t" and object_type in objects:
            inner = objects[object_type]["attributes"]
            items = value if isinstance(value, list) else [value]
            for n, item in enumerate(items):
                if isinstance(item, Mapping):
                    index = f"[{n}]" if isinstance(value, list) else ""
                    problems.extend(_siblings(item, inner, f"{where}{name}{index}."))
    return problems
