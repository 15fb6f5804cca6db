"""The one rule for key names, shared by every backend.

Names end up in file keys, PKCS#11 labels (``<name>.v<N>``) and Vault URL paths, so they are
kept to a small alphabet that is safe in all three.
"""

from __future__ import annotations

import re

from tsuba.core.errors import InputError

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_key_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"invalid key name {name!r}: use 1-63 characters of a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"invalid key version {version!r}: versions are integers from 1")
    return version
