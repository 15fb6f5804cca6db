"""Names, actions and resource patterns: what is well-formed, and what matches what.

Resources are paths of segments separated by ``/`` (``model/demo``, ``dataset/finance/q3``).
A resource pattern matches a resource segment by segment:

- a segment without ``*`` matches only the identical segment;
- ``*`` as a whole segment matches exactly one segment, never across a ``/``;
- ``*`` inside a segment (``gpt-*``) matches any run of characters within that one segment;
- ``**`` as a whole segment matches any number of segments, zero included, so
  ``dataset/finance/**`` covers ``dataset/finance`` itself and everything below it, and
  ``**`` alone covers every resource.

``**`` must stand alone in its segment (``**x`` is malformed) and two ``**`` segments may not
follow each other.  ``?``, ``[`` and ``]`` have no special meaning and are not allowed, nor are
empty segments, ``.`` and ``..`` (one resource has one spelling).

Actions are ``:``-separated lowercase words (``model:invoke``, ``audit:read``).  In a
permission, ``*`` matches every action and ``model:*`` every action under ``model:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from tsuba.core.errors import InputError

MAX_RESOURCE_LENGTH = 512
MAX_SEGMENTS = 32
MAX_WILDCARDS = 8
MAX_GLOBSTARS = 2
MAX_ACTION_LENGTH = 128

_SEGMENT_PUNCT = "._~@:+=,%-"
_SEGMENT_CHARS = "A-Za-z0-9" + _SEGMENT_PUNCT
_SEGMENT = re.compile(rf"[{_SEGMENT_CHARS}]+")
_PATTERN_SEGMENT = re.compile(rf"[*{_SEGMENT_CHARS}]+")
_ACTION_WORD = re.compile(r"[a-z][a-z0-9_-]*")
_PRINCIPAL_NAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")


def validate_principal_name(name: str) -> str:
    if not _PRINCIPAL_NAME.fullmatch(name):
        raise InputError(
            f"invalid principal name {name!r}: use 1-128 lowercase letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    return name


def validate_role_name(name: str) -> str:
    if not _ROLE_NAME.fullmatch(name):
        raise InputError(
            f"invalid role name {name!r}: use 1-64 lowercase letters, digits and . _ : - "
            "(starting with a letter or digit)"
        )
    return name


# -- actions -------------------------------------------------------------------------------


def validate_action(action: str, *, pattern: bool = False) -> str:
    """Check an action (``pattern=False``) or an action pattern in a permission."""
    if not action:
        raise InputError("action is empty: give one like 'model:invoke'")
    if len(action) > MAX_ACTION_LENGTH:
        raise InputError(f"action is longer than {MAX_ACTION_LENGTH} characters")
    if pattern and action == "*":
        return action
    words = action.split(":")
    if pattern and words[-1] == "*" and len(words) > 1:
        words = words[:-1]
    for word in words:
        if not _ACTION_WORD.fullmatch(word):
            allowed = "'*', 'ns:*' or " if pattern else ""
            raise InputError(
                f"malformed action {action!r}: use {allowed}':'-separated lowercase words "
                "like 'model:invoke'"
            )
    return action


def action_matches(pattern: str, action: str) -> bool:
    """Whether a (validated) action pattern covers a (validated) action."""
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return action.startswith(pattern[:-1])
    return pattern == action


# -- resources -----------------------------------------------------------------------------


def validate_resource(resource: str) -> str:
    """Check a concrete resource name (no wildcards)."""
    _check_length(resource, "resource")
    for segment in resource.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise InputError(
                f"malformed resource {resource!r}: segment {segment!r} must be non-empty, not "
                f"'.' or '..', and use only letters, digits and {_SEGMENT_PUNCT} "
                "(like 'model/demo')"
            )
    return resource


@dataclass(frozen=True, slots=True)
class ResourcePattern:
    """A validated, compiled resource pattern."""

    text: str
    exact: bool
    regex: re.Pattern[str] | None

    def matches(self, resource: str) -> bool:
        if self.exact:
            return resource == self.text
        assert self.regex is not None
        return self.regex.fullmatch(resource) is not None


def compile_pattern(pattern: str) -> ResourcePattern:
    """Validate and compile a resource pattern; raises InputError naming the problem."""
    return _compile(pattern)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> ResourcePattern:
    _check_length(pattern, "resource pattern")
    segments = pattern.split("/")
    if pattern.count("*") - pattern.count("**") > MAX_WILDCARDS:
        raise InputError(f"resource pattern {pattern!r} has more than {MAX_WILDCARDS} wildcards")
    if segments.count("**") > MAX_GLOBSTARS:
        raise InputError(
            f"resource pattern {pattern!r} has more than {MAX_GLOBSTARS} '**' segments"
        )
    for index, segment in enumerate(segments):
        _check_pattern_segment(pattern, segment)
        if segment == "**" and index > 0 and segments[index - 1] == "**":
            raise InputError(
                f"malformed resource pattern {pattern!r}: '**/**' is redundant, write '**'"
            )
    if "*" not in pattern:
        return ResourcePattern(pattern, True, None)
    last = len(segments) - 1
    parts: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "**":
            if last == 0:
                parts.append(r"[^/]+(?:/[^/]+)*")
            elif index == 0:
                parts.append(r"(?:[^/]+/)*")
            elif index == last:
                parts.append(r"(?:/[^/]+)*")
            else:
                parts.append(r"/(?:[^/]+/)*")
            continue
        if index > 0 and segments[index - 1] != "**":
            parts.append("/")
        parts.append(_segment_regex(segment))
    return ResourcePattern(pattern, False, re.compile("".join(parts)))


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return r"[^/]+"
    pieces = [re.escape(piece) for piece in segment.split("*")]
    if len(pieces) == 1:
        return pieces[0]
    # Committing each inner literal to its first occurrence (an atomic group) is exact for
    # '*'-only globs and keeps matching linear instead of backtracking exponentially.
    inner = "".join(f"(?>[^/]*?{piece})" for piece in pieces[1:-1])
    return f"{pieces[0]}{inner}[^/]*{pieces[-1]}"


def _check_length(value: str, what: str) -> None:
    if not value:
        raise InputError(f"{what} is empty: give one like 'model/demo'")
    if len(value) > MAX_RESOURCE_LENGTH:
        raise InputError(f"{what} is longer than {MAX_RESOURCE_LENGTH} characters")
    if value.count("/") >= MAX_SEGMENTS:
        raise InputError(f"{what} has more than {MAX_SEGMENTS} segments")


def _check_pattern_segment(pattern: str, segment: str) -> None:
    problem = ""
    if not segment:
        problem = "has an empty segment (leading, trailing or doubled '/')"
    elif segment in (".", ".."):
        problem = f"has a {segment!r} segment"
    elif not _PATTERN_SEGMENT.fullmatch(segment):
        problem = (
            f"segment {segment!r} has a character outside letters, digits, * and {_SEGMENT_PUNCT}"
        )
    elif "**" in segment and segment != "**":
        problem = f"segment {segment!r} mixes '**' with other characters ('**' stands alone)"
    if problem:
        raise InputError(
            f"malformed resource pattern {pattern!r}: {problem}; '*' matches one segment, "
            "'**' any number of segments"
        )
