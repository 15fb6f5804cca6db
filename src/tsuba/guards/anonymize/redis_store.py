"""The shared pseudonym store in Redis: one hash per session, sealed values, session TTL.

For gateways that already share a Redis (limits, replay cache) and would rather not write
to the database on every pseudonymized prompt.  A session's hash holds ``n:<TYPE>`` (the
last number given out), ``d:<digest>`` (the placeholder of a value, found by its keyed
digest) and ``v:<placeholder>`` (the sealed value, bound to session and placeholder: see
``sealing``).  A new placeholder is claimed with one Lua script that succeeds only if the
number it was sealed for is still the next one, so concurrent workers never share a number
and a placeholder never exists without its value.  The whole hash expires ``ttl`` after it
was last written or touched, which is the session's lifetime.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tsuba.core.errors import InputError, StorageError
from tsuba.core.keys import envelope
from tsuba.core.keys.base import KeyKind, KeyManager
from tsuba.guards.anonymize import sealing
from tsuba.guards.anonymize.operators import DEFAULT_HASH_KEY, PLACEHOLDER
from tsuba.guards.anonymize.sealing import check_entity_type, check_session

MAX_ATTEMPTS = sealing.MAX_ATTEMPTS

# KEYS[1]: the session's hash.  ARGV: digest (hex), entity type, ordinal sealed for, sealed
# value, ttl in ms.  Returns {1, placeholder} if the value already has one, {2, placeholder}
# when claimed now, {0, last number} when another worker took the number first.
_CLAIM_LUA = """
local found = redis.call('HGET', KEYS[1], 'd:' .. ARGV[1])
if found then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, found}
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n:' .. ARGV[2]) or '0')
if n + 1 ~= tonumber(ARGV[3]) then
  return {0, tostring(n)}
end
local placeholder = '<' .. ARGV[2] .. '_' .. ARGV[3] .. '>'
redis.call('HSET', KEYS[1], 'n:' .. ARGV[2], ARGV[3], 'd:' .. ARGV[1], placeholder,
           'v:' .. placeholder, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {2, placeholder}
"""


class RedisMappingStore:
    """A :class:`~tsuba.guards.anonymize.MappingStore` in Redis (synchronous client)."""

    def __init__(
        self,
        client: Any,
        keys: KeyManager,
        *,
        ttl: timedelta = timedelta(hours=1),
        prefix: str = "tsuba:guards:",
        kek: str = envelope.DEFAULT_KEK,
        hmac_key: str = DEFAULT_HASH_KEY,
    ) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415 -- only with a Redis client

        if ttl <= timedelta(0):
            raise InputError("pseudonym store ttl must be positive")
        self._client = client
        self._keys = keys
        self.ttl = ttl
        self._ttl_ms = max(1, round(ttl.total_seconds() * 1000))
        self._prefix = prefix + "ps:"
        self._kek = kek
        self._hmac_key = hmac_key
        self._claim = client.register_script(_CLAIM_LUA)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)
        keys.create(hmac_key, KeyKind.HMAC_SHA256, exist_ok=True)

    def _key(self, session: str) -> str:
        check_session(session)
        return self._prefix + session

    def _failed(self, exc: BaseException) -> StorageError:
        return StorageError(
            f"pseudonym store (Redis) failed: {exc}; requests that pseudonymize are refused "
            "until it is reachable again"
        )

    # -- MappingStore ------------------------------------------------------------------
    def placeholder_for(self, session: str, entity_type: str, value: str) -> str:
        key = self._key(session)
        check_entity_type(entity_type)
        digest = sealing.digest(self._keys, self._hmac_key, session, entity_type, value).hex()
        try:
            found, last = self._client.hmget(key, "d:" + digest, "n:" + entity_type)
        except self._errors as exc:
            raise self._failed(exc) from exc
        if found is not None:
            self._touch_key(key)
            return _str(found)
        ordinal = int(last or 0) + 1
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                sealing.contention_pause(attempt)
            placeholder = f"<{entity_type}_{ordinal}>"
            blob = sealing.seal(self._keys, self._kek, session, placeholder, value)
            try:
                status, result = self._claim(
                    keys=[key], args=[digest, entity_type, ordinal, blob, self._ttl_ms]
                )
            except self._errors as exc:
                raise self._failed(exc) from exc
            if int(status):
                return _str(result)
            ordinal = int(result) + 1  # another worker took the number: seal for the next
        raise StorageError(
            f"pseudonym store: could not assign a placeholder after {MAX_ATTEMPTS} attempts "
            "(heavy contention); retry the request"
        )

    def mapping(self, session: str) -> dict[str, str]:
        key = self._key(session)
        try:
            fields = self._client.hgetall(key)
        except self._errors as exc:
            raise self._failed(exc) from exc
        out: dict[str, str] = {}
        for raw_field, blob in fields.items():
            name = _str(raw_field)
            if name.startswith("v:") and PLACEHOLDER.fullmatch(name[2:]):
                out[name[2:]] = sealing.unseal(self._keys, session, name[2:], bytes(blob))
        return out

    def value_for(self, session: str, placeholder: str) -> str | None:
        if PLACEHOLDER.fullmatch(placeholder) is None:
            raise InputError(f"'{placeholder[:80]}' is not a placeholder like <PERSON_1>")
        key = self._key(session)
        try:
            blob = self._client.hget(key, "v:" + placeholder)
        except self._errors as exc:
            raise self._failed(exc) from exc
        return None if blob is None else sealing.unseal(self._keys, session, placeholder, blob)

    # -- session lifetime ------------------------------------------------------------------
    def touch(self, session: str) -> int:
        return self._touch_key(self._key(session))

    def _touch_key(self, key: str) -> int:
        try:
            return int(bool(self._client.pexpire(key, self._ttl_ms)))
        except self._errors as exc:
            raise self._failed(exc) from exc

    def drop(self, session: str) -> int:
        key = self._key(session)
        try:
            return int(self._client.delete(key))
        except self._errors as exc:
            raise self._failed(exc) from exc


def _str(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
