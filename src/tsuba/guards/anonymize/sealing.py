"""How a pseudonym store keeps values: a keyed digest to find them, an envelope to hold them.

Shared by the database and Redis stores so both seal values the same way.  The digest
(HMAC, scoped to the session) finds an existing placeholder without storing the value; the
envelope's associated data binds the ciphertext to its session and placeholder, so a value
copied to another session or placeholder does not decrypt.
"""

from __future__ import annotations

import random
import re
import time

from tsuba.core.errors import DecryptionError, InputError
from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyManager

SESSION = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
ENTITY_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_DIGEST_PREFIX = b"tsuba-pseudonym/v1 digest\x00"
_VALUE_PREFIX = b"tsuba-pseudonym/v1 value\x00"

# Workers racing for a session's next number retry; one that lost waits a random moment
# first, so a busy session's workers take turns instead of the fastest winning every round.
MAX_ATTEMPTS = 32
_PAUSE_SECONDS = 0.001
_PAUSE_MAX_SECONDS = 0.05


def contention_pause(attempt: int) -> None:
    """Sleep a jittered, growing moment before retry number ``attempt`` (1, 2, ...)."""
    ceiling = min(_PAUSE_MAX_SECONDS, _PAUSE_SECONDS * 2**attempt)
    time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret


def check_session(session: str) -> None:
    if not SESSION.fullmatch(session):
        raise InputError(
            "pseudonym session id must be 1-128 characters of letters, digits and _.:-"
        )


def check_entity_type(entity_type: str) -> None:
    if not ENTITY_TYPE.fullmatch(entity_type):
        raise InputError(f"entity type '{entity_type[:80]}' is not UPPER_SNAKE_CASE")


def digest(keys: KeyManager, hmac_key: str, session: str, entity_type: str, value: str) -> bytes:
    data = b"\x00".join([_DIGEST_PREFIX, session.encode(), entity_type.encode(), value.encode()])
    return keys.hmac(hmac_key, data)


def seal(keys: KeyManager, kek: str, session: str, placeholder: str, value: str) -> bytes:
    return envelope.encrypt(keys, kek, value.encode(), _aad(session, placeholder))


def unseal(keys: KeyManager, session: str, placeholder: str, blob: bytes) -> str:
    """The value, or DecryptionError naming the placeholder (modified, moved or wrong key)."""
    try:
        return envelope.decrypt(keys, blob, _aad(session, placeholder)).decode()
    except (DecryptionError, ValueError) as exc:
        raise DecryptionError(
            f"pseudonym store: the stored value of {placeholder} does not decrypt (modified, "
            "moved from another session, or the key is gone); its answer is withheld"
        ) from exc


def _aad(session: str, placeholder: str) -> bytes:
    return _VALUE_PREFIX + session.encode() + b"\x00" + placeholder.encode()
