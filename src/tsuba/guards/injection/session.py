"""Risk that builds up over a conversation, per session and per principal.

Attackers probe: one message tests a boundary, the next rephrases, a third splits the
payload across turns.  Each message alone may stay under the threshold, so evidence from
suspicious turns accumulates (decaying with a half-life) per session and, more slowly, per
principal across sessions; the tail of the recent user text is re-scored with each new
turn so a payload split over messages is read whole.  Pure in-memory state with expiry and
a size bound; no I/O.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tsuba.core.errors import InputError
from tsuba.guards.injection.detector import Source, analyze

FLOOR = 0.2  # message scores below this are ordinary traffic and add no evidence
TAIL_CHARS = 600  # recent user text re-read together with the next message


@dataclass(slots=True)
class _Entry:
    evidence: float
    updated: float  # last observed message: what expiry counts from
    decayed_at: float  # when ``evidence`` was last brought up to date
    turns: int
    suspicious_turns: int
    tail: str


@dataclass(frozen=True, slots=True)
class RiskState:
    """What one observed message did to its conversation."""

    message_score: float  # the message alone (or with the recent tail, if higher)
    session_risk: float  # in [0, 1]
    principal_risk: float  # in [0, 1]
    turns: int
    suspicious_turns: int

    @property
    def risk(self) -> float:
        """The number a policy acts on: the worst of message, session and principal."""
        return max(self.message_score, self.session_risk, self.principal_risk)

    def as_dict(self) -> dict[str, object]:
        return {
            "message_score": round(self.message_score, 4),
            "session_risk": round(self.session_risk, 4),
            "principal_risk": round(self.principal_risk, 4),
            "risk": round(self.risk, 4),
            "turns": self.turns,
            "suspicious_turns": self.suspicious_turns,
        }


class _Table:
    def __init__(self, half_life: float, ttl: float, max_entries: int) -> None:
        self.half_life, self.ttl, self.max_entries = half_life, ttl, max_entries
        self.entries: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str, now: float) -> _Entry:
        entry = self.entries.get(key)
        if entry is None or now - entry.updated > self.ttl:
            entry = _Entry(0.0, now, now, 0, 0, "")
            self.entries[key] = entry
        else:
            elapsed = max(0.0, now - entry.decayed_at)
            entry.evidence *= math.pow(0.5, elapsed / self.half_life)
            entry.decayed_at = max(entry.decayed_at, now)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return entry

    def purge(self, now: float) -> int:
        stale = [k for k, e in self.entries.items() if now - e.updated > self.ttl]
        for key in stale:
            del self.entries[key]
        return len(stale)


def _risk(evidence: float, scale: float) -> float:
    return 1.0 - math.exp(-evidence / scale)


class ConversationRisk:
    """Accumulates injection evidence per session and per principal.

    ``observe`` scores a message (with the session's recent tail) and adds
    ``(score - FLOOR) / (1 - FLOOR)`` of evidence when the score is above the floor.  Risk is
    ``1 - exp(-evidence / scale)``: with the default scale a session crosses 0.5 after about
    two clearly suspicious turns or four borderline ones within a half-life.
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
        clock: Callable[[], float] = time.monotonic,
        scorer: Callable[[str, Source], float] | None = None,
    ) -> None:
        if min(session_half_life, principal_half_life, session_scale, principal_scale, ttl) <= 0:
            raise InputError("half-lives, scales and ttl must be positive")
        if max_entries < 1:
            raise InputError("max_entries must be at least 1")
        self._sessions = _Table(session_half_life, ttl, max_entries)
        self._principals = _Table(principal_half_life, ttl, max_entries)
        self._session_scale, self._principal_scale = session_scale, principal_scale
        self._clock = clock
        self._scorer = scorer or (lambda text, source: analyze(text, source).score)
        self._lock = threading.Lock()

    def observe(
        self, session: str, text: str, *, principal: str | None = None, source: Source = "user"
    ) -> RiskState:
        """Score one message in its conversation and update the accumulated risk."""
        with self._lock:
            tail = self._sessions.get(session, self._clock()).tail
        alone = self._scorer(text, source)
        joined = self._scorer(f"{tail}\n{text}", source) if tail and source == "user" else 0.0
        message = max(alone, joined)
        evidence = max(0.0, message - FLOOR) / (1.0 - FLOOR)
        with self._lock:
            now = self._clock()
            sess = self._sessions.get(session, now)
            sess.evidence += evidence
            sess.turns += 1
            sess.suspicious_turns += int(message >= 0.5 or evidence > 0.25)
            sess.updated = now
            if source == "user":
                sess.tail = (sess.tail + "\n" + text)[-TAIL_CHARS:]
            principal_risk = 0.0
            if principal is not None:
                prin = self._principals.get(principal, now)
                prin.evidence += evidence
                prin.turns += 1
                prin.suspicious_turns += int(message >= 0.5)
                prin.updated = now
                principal_risk = _risk(prin.evidence, self._principal_scale)
            return RiskState(
                message_score=message,
                session_risk=_risk(sess.evidence, self._session_scale),
                principal_risk=principal_risk,
                turns=sess.turns,
                suspicious_turns=sess.suspicious_turns,
            )

    def peek(self, session: str | None = None, principal: str | None = None) -> float:
        """Current decayed risk of a session or principal without adding a message."""
        with self._lock:
            now = self._clock()
            risk = 0.0
            if session is not None and session in self._sessions.entries:
                entry = self._sessions.get(session, now)
                risk = max(risk, _risk(entry.evidence, self._session_scale))
            if principal is not None and principal in self._principals.entries:
                entry = self._principals.get(principal, now)
                risk = max(risk, _risk(entry.evidence, self._principal_scale))
            return risk

    def forget(self, session: str) -> None:
        with self._lock:
            self._sessions.entries.pop(session, None)

    def purge(self) -> int:
        """Drop expired sessions and principals; returns how many were dropped."""
        with self._lock:
            now = self._clock()
            return self._sessions.purge(now) + self._principals.purge(now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions.entries) + len(self._principals.entries)
