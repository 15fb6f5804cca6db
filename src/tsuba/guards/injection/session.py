"""Risk that builds up over a conversation, per session and per principal.

Attackers probe: one message tests a boundary, the next rephrases, a third splits the
payload across turns.  Each message alone may stay under the threshold, so evidence from
suspicious turns accumulates (decaying with a half-life) per session and, more slowly, per
principal across sessions; the tail of the recent user text is re-scored with each new
turn so a payload split over messages is read whole.

Where the evidence lives is a :class:`RiskStore`: :class:`MemoryRiskStore` (one process,
bounded, the default) or ``tsuba.guards.injection.risk_redis.RedisRiskStore``, shared by
every gateway worker and machine, so probing spread over workers behind a load balancer
adds up as it would on one.  Stores keep evidence with the time it was last decayed and
decay it on every read and update, so no background job is needed.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tsuba.core.errors import InputError, StorageError
from tsuba.guards.injection.detector import Source, analyze

FLOOR = 0.2  # message scores below this are ordinary traffic and add no evidence
TAIL_CHARS = 600  # recent user text re-read together with the next message


@dataclass(frozen=True, slots=True)
class Accumulated:
    """One key's evidence, decayed to the time it was read."""

    evidence: float = 0.0
    turns: int = 0
    suspicious_turns: int = 0
    tail: str = ""


EMPTY = Accumulated()


class RiskStore(Protocol):
    """Decaying evidence per key (``s:<session>``, ``p:<principal>``).

    ``add`` must be atomic: two workers adding at once both count.  ``now`` is wall-clock
    seconds; time running backwards never increases evidence.
    """

    def read(self, key: str, *, half_life: float, now: float) -> Accumulated: ...

    def add(
        self,
        key: str,
        evidence: float,
        *,
        suspicious: bool,
        half_life: float,
        ttl: float,
        now: float,
        tail: str | None = None,
    ) -> Accumulated:
        """Decay, add ``evidence``, count the turn, append ``tail``; the new state."""
        ...

    def forget(self, key: str) -> None: ...

    def purge(self, now: float) -> int:
        """Drop expired keys (stores that expire keys themselves return 0)."""
        ...


def decay(evidence: float, elapsed: float, half_life: float) -> float:
    return evidence * math.pow(0.5, max(0.0, elapsed) / half_life)


def append_tail(tail: str, text: str) -> str:
    return (tail + "\n" + text)[-TAIL_CHARS:]


@dataclass(slots=True)
class _Entry:
    evidence: float
    updated: float  # last observed message: what expiry counts from
    decayed_at: float  # when ``evidence`` was last brought up to date
    ttl: float
    turns: int
    suspicious_turns: int
    tail: str


class MemoryRiskStore:
    """Evidence in this process only, least recently used dropped past ``max_entries``."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise InputError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, key: str, half_life: float, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry.updated > entry.ttl:
            del self._entries[key]
            return None
        entry.evidence = decay(entry.evidence, now - entry.decayed_at, half_life)
        entry.decayed_at = max(entry.decayed_at, now)
        return entry

    def read(self, key: str, *, half_life: float, now: float) -> Accumulated:
        with self._lock:
            entry = self._live(key, half_life, now)
            if entry is None:
                return EMPTY
            return Accumulated(entry.evidence, entry.turns, entry.suspicious_turns, entry.tail)

    def add(
        self,
        key: str,
        evidence: float,
        *,
        suspicious: bool,
        half_life: float,
        ttl: float,
        now: float,
        tail: str | None = None,
    ) -> Accumulated:
        with self._lock:
            entry = self._live(key, half_life, now)
            if entry is None:
                entry = _Entry(0.0, now, now, ttl, 0, 0, "")
                self._entries[key] = entry
            entry.evidence += evidence
            entry.turns += 1
            entry.suspicious_turns += int(suspicious)
            entry.updated, entry.ttl = now, ttl
            if tail is not None:
                entry.tail = append_tail(entry.tail, tail)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return Accumulated(entry.evidence, entry.turns, entry.suspicious_turns, entry.tail)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def purge(self, now: float) -> int:
        with self._lock:
            stale = [k for k, e in self._entries.items() if now - e.updated > e.ttl]
            for key in stale:
                del self._entries[key]
            return len(stale)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# KEYS[1]: the key's hash.  ARGV: now, half-life, evidence to add, 1 if suspicious, ttl in
# ms, text to append to the tail ("" for none), tail limit in bytes.  Decay, add and count in
# one step, so concurrent workers never lose an update.
_ADD_LUA = """
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'e', 't', 'n', 's', 'x')
local e = tonumber(v[1]) or 0
local t = tonumber(v[2]) or now
if now > t then
  e = e * math.pow(0.5, (now - t) / tonumber(ARGV[2]))
  t = now
end
e = e + tonumber(ARGV[3])
local n = (tonumber(v[3]) or 0) + 1
local s = (tonumber(v[4]) or 0) + tonumber(ARGV[4])
local x = v[5] or ''
if ARGV[6] ~= '' then
  x = x .. '\\n' .. ARGV[6]
  local limit = tonumber(ARGV[7])
  if #x > limit then x = string.sub(x, -limit) end
end
redis.call('HSET', KEYS[1], 'e', string.format('%.17g', e), 't', string.format('%.17g', t),
           'n', n, 's', s, 'x', x)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {string.format('%.17g', e), n, s, x}
"""


class RedisRiskStore:
    """Evidence in Redis, shared by every gateway worker and machine that uses it.

    One hash per key holds the evidence, the time it was last decayed, the turn counts and
    the recent tail; one Lua script decays and adds atomically, and the key expires ``ttl``
    after its last update.  ``client`` is a synchronous ``redis.Redis``; Redis failing
    raises StorageError, and the gateway then refuses the request (fail closed).
    """

    def __init__(self, client: Any, *, prefix: str = "tsuba:guards:") -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415 -- only with a Redis client

        self._client = client
        self._prefix = prefix + "risk:"
        self._add = client.register_script(_ADD_LUA)
        self._errors: tuple[type[BaseException], ...] = (RedisError, OSError)

    def _failed(self, exc: BaseException) -> StorageError:
        return StorageError(
            f"conversation risk store (Redis) failed: {exc}; requests are refused until it "
            "is reachable again"
        )

    def read(self, key: str, *, half_life: float, now: float) -> Accumulated:
        try:
            e, t, n, s, x = self._client.hmget(self._prefix + key, "e", "t", "n", "s", "x")
        except self._errors as exc:
            raise self._failed(exc) from exc
        if e is None:
            return EMPTY
        evidence = decay(float(e), now - float(t), half_life)
        return Accumulated(evidence, int(n), int(s), _text(x)[-TAIL_CHARS:])

    def add(
        self,
        key: str,
        evidence: float,
        *,
        suspicious: bool,
        half_life: float,
        ttl: float,
        now: float,
        tail: str | None = None,
    ) -> Accumulated:
        args = [repr(now), repr(half_life), repr(evidence), int(suspicious),
                max(1, round(ttl * 1000)), tail or "", TAIL_CHARS * 4]
        try:
            e, n, s, x = self._add(keys=[self._prefix + key], args=args)
        except self._errors as exc:
            raise self._failed(exc) from exc
        return Accumulated(float(e), int(n), int(s), _text(x)[-TAIL_CHARS:])

    def forget(self, key: str) -> None:
        try:
            self._client.delete(self._prefix + key)
        except self._errors as exc:
            raise self._failed(exc) from exc

    def purge(self, now: float) -> int:
        return 0  # keys expire in Redis


def _text(raw: bytes | str | None) -> str:
    """The stored tail; a character cut by the byte limit at its start is dropped."""
    if raw is None:
        return ""
    return raw.decode("utf-8", "ignore") if isinstance(raw, bytes) else raw


@dataclass(frozen=True, slots=True)
class RiskState:
    """What one observed message did to its conversation."""

    message_score: float  # the message alone (or with the recent tail, if higher)
    session_risk: float  # in [0, 1]
    principal_risk: float  # in [0, 1]
    turns: int
    suspicious_turns: int
    alone_score: float = 0.0  # the message without the tail

    @property
    def risk(self) -> float:
        """The number a policy acts on: the worst of message, session and principal."""
        return max(self.message_score, self.session_risk, self.principal_risk)

    @property
    def conversation_risk(self) -> float:
        """What the conversation adds up to, regardless of this message alone."""
        return max(self.session_risk, self.principal_risk)

    def as_dict(self) -> dict[str, object]:
        return {
            "message_score": round(self.message_score, 4),
            "session_risk": round(self.session_risk, 4),
            "principal_risk": round(self.principal_risk, 4),
            "risk": round(self.risk, 4),
            "turns": self.turns,
            "suspicious_turns": self.suspicious_turns,
        }


def _risk(evidence: float, scale: float) -> float:
    return 1.0 - math.exp(-evidence / scale)


class ConversationRisk:
    """Accumulates injection evidence per session and per principal.

    ``observe`` scores a message (with the session's recent tail) and adds
    ``(score - FLOOR) / (1 - FLOOR)`` of evidence when the score is above the floor.  Risk is
    ``1 - exp(-evidence / scale)``: with the default scale a session crosses 0.5 after about
    two clearly suspicious turns or four borderline ones within a half-life.  Without a
    ``store`` sessions and principals each get a bounded in-process store.
    """

    def __init__(
        self,
        *,
        session_half_life: float = 900.0,
        principal_half_life: float = 6 * 3600.0,
        session_scale: float = 1.0,
        principal_scale: float = 2.5,
        ttl: float = 24 * 3600.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        scorer: Callable[[str, Source], float] | None = None,
        store: RiskStore | None = None,
    ) -> None:
        if min(session_half_life, principal_half_life, session_scale, principal_scale, ttl) <= 0:
            raise InputError("half-lives, scales and ttl must be positive")
        if max_entries < 1:
            raise InputError("max_entries must be at least 1")
        self._sessions: RiskStore = store or MemoryRiskStore(max_entries)
        self._principals: RiskStore = store or MemoryRiskStore(max_entries)
        self._session_half_life, self._principal_half_life = session_half_life, principal_half_life
        self._session_scale, self._principal_scale = session_scale, principal_scale
        self._ttl = ttl
        self._clock = clock
        self._scorer = scorer or (lambda text, source: analyze(text, source).score)

    def observe(
        self,
        session: str,
        text: str,
        *,
        principal: str | None = None,
        source: Source = "user",
        remember: bool = True,
    ) -> RiskState:
        """Score one message in its conversation and update the accumulated risk.

        ``remember=False`` counts the message without keeping its text in the tail (for a
        message refused anyway, whose text should not be stored).
        """
        skey = "s:" + session
        tail = self._sessions.read(skey, half_life=self._session_half_life, now=self._clock()).tail
        alone = self._scorer(text, source)
        joined = self._scorer(f"{tail}\n{text}", source) if tail and source == "user" else 0.0
        message = max(alone, joined)
        evidence = max(0.0, message - FLOOR) / (1.0 - FLOOR)
        now = self._clock()
        sess = self._sessions.add(
            skey,
            evidence,
            suspicious=message >= 0.5 or evidence > 0.25,
            half_life=self._session_half_life,
            ttl=self._ttl,
            now=now,
            tail=text if source == "user" and remember else None,
        )
        principal_risk = 0.0
        if principal is not None:
            prin = self._principals.add(
                "p:" + principal,
                evidence,
                suspicious=message >= 0.5,
                half_life=self._principal_half_life,
                ttl=self._ttl,
                now=now,
            )
            principal_risk = _risk(prin.evidence, self._principal_scale)
        return RiskState(
            message_score=message,
            session_risk=_risk(sess.evidence, self._session_scale),
            principal_risk=principal_risk,
            turns=sess.turns,
            suspicious_turns=sess.suspicious_turns,
            alone_score=alone,
        )

    def peek(self, session: str | None = None, principal: str | None = None) -> float:
        """Current decayed risk of a session or principal without adding a message."""
        now = self._clock()
        risk = 0.0
        if session is not None:
            got = self._sessions.read("s:" + session, half_life=self._session_half_life, now=now)
            risk = max(risk, _risk(got.evidence, self._session_scale))
        if principal is not None:
            got = self._principals.read(
                "p:" + principal, half_life=self._principal_half_life, now=now
            )
            risk = max(risk, _risk(got.evidence, self._principal_scale))
        return risk

    def forget(self, session: str) -> None:
        self._sessions.forget("s:" + session)

    def purge(self) -> int:
        """Drop expired sessions and principals; returns how many were dropped."""
        now = self._clock()
        dropped = self._sessions.purge(now)
        if self._principals is not self._sessions:
            dropped += self._principals.purge(now)
        return dropped

    def __len__(self) -> int:
        stores = {id(s): s for s in (self._sessions, self._principals)}.values()
        return sum(len(s) for s in stores if isinstance(s, MemoryRiskStore))
