"""tsuba.guards on the request path: guard kinds ``pii``, ``secrets``, ``injection``, ``leaks``.

Each adapter turns the pure library's findings into the chain's findings; the chain decides
what a verdict does (flag, pseudonymize, redact, block) and a failing guard blocks.
Configure them in ``gateway.guards``, e.g.
``{name = "pii", kind = "pii", stage = "both", action = "redact"}``.

Options:
- pii: ``entities`` (list, default all), ``language`` (default "en"), ``min_score``.
- secrets: ``min_score`` (default 0.5).
- injection: ``threshold`` (default 0.5); input is scored as ``user`` text, output as
  ``tool`` text (a model echoing instructions it found).  One finding spans the whole text.
  ``conversation`` (default false) also scores the newest user message with its
  conversation: risk accumulated per session and per principal (see
  ``tsuba.guards.injection.session``) in the guard's ``store`` ("memory": this process;
  "redis": every worker), acted on at ``conversation_threshold`` (default: ``threshold``);
  ``session_half_life_seconds`` (900) and ``principal_half_life_seconds`` (21600).
- leaks: ``allowed_hosts`` (list): markdown/HTML resources that would carry data elsewhere.

Pseudonymize (``action = "pseudonymize"``, pii and secrets on the input stage): each value
found in the prompt becomes ``<TYPE_n>``, numbered consistently within the conversation (the
``x-tsuba-session-id`` session when sessions are on, else the one request), and the real
values are put back in the answer (:class:`Pseudonyms`).  The mapping lives in the guard's
``store``: "database" (default) or "redis", so every worker and machine restores what any
other assigned; it expires with the session's TTL.  Output guards inspect the model's own
text, with placeholders, before values are restored: what they catch is what the model
produced, never a value the caller itself sent in this conversation (restoring it to the
same caller discloses nothing, and re-redacting it would break the answer).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import orjson

from tsuba.core.config import GuardSettings
from tsuba.core.errors import ConfigError
from tsuba.core.platform import Platform
from tsuba.gateway.guards import (
    Action,
    Conversation,
    Finding,
    Guard,
    Stage,
    Verdict,
    register_kind,
)
from tsuba.gateway.streaming import json_escape
from tsuba.guards import injection, leaks, pii, secrets
from tsuba.guards.anonymize import MappingStore, MemoryMappingStore, restore
from tsuba.guards.anonymize.store import SqlMappingStore
from tsuba.guards.injection.session import (
    ConversationRisk,
    MemoryRiskStore,
    RedisRiskStore,
    RiskStore,
)
from tsuba.guards.types import Finding as ContentFinding
from tsuba.guards.types import resolve_overlaps

_VERDICT = {
    "block": Verdict.BLOCK,
    "redact": Verdict.REDACT,
    "flag": Verdict.FLAG,
    "pseudonymize": Verdict.PSEUDONYMIZE,
}


def _options(cfg: GuardSettings, allowed: set[str]) -> dict[str, Any]:
    extra = set(cfg.options) - allowed
    if extra:
        raise ConfigError(f"guard '{cfg.name}': unknown option(s) {', '.join(sorted(extra))}")
    return dict(cfg.options)


class _SpanGuard:
    """A guard whose library call returns spans (PII, secrets, leaks)."""

    def __init__(
        self,
        name: str,
        action: Action,
        max_match: int,
        find: Callable[[str, Stage], list[ContentFinding]],
    ) -> None:
        self.name = name
        self.action: Action = action
        self.max_match = max_match
        self._verdict = _VERDICT[action]
        self._find = find

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        found = self._find(text, stage)
        if self._verdict is Verdict.PSEUDONYMIZE:
            found = resolve_overlaps(found)  # one placeholder per span, none assigned in vain
        return [
            Finding(
                self.name,
                self._verdict,
                f"{f.entity_type} ({f.recognizer}) in the {stage}",
                f.start,
                f.end,
                replacement=f"<{f.entity_type}>",
                entity_type=_entity_type(f.entity_type),
            )
            for f in found
        ]


def _entity_type(name: str) -> str:
    """A placeholder's type: UPPER_SNAKE_CASE, at most 64 characters."""
    cleaned = re.sub(r"[^A-Z0-9_]", "_", name.upper())[:64]
    return cleaned if cleaned[:1].isalpha() else ("X" + cleaned)[:64]


def _pii(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"entities", "language", "min_score"})
    entities = opts.get("entities")
    language = str(opts.get("language", "en"))
    min_score = opts.get("min_score")
    if language not in pii.LANGUAGES:
        raise ConfigError(f"guard '{cfg.name}': language must be one of {sorted(pii.LANGUAGES)}")

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return pii.analyze(text, entities, language, min_score=min_score)

    # Addresses are the longest PII spans; 200 characters covers a full postal address.
    return _SpanGuard(cfg.name, cfg.action, 200, find)


def _secrets(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"min_score"})
    min_score = float(opts.get("min_score", 0.5))

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return secrets.scan(text, min_score=min_score)

    # A PEM private key block is the longest secret (a 4096-bit RSA key is about 3.3 KB).
    return _SpanGuard(cfg.name, cfg.action, 4096, find)


def _leaks(cfg: GuardSettings) -> Guard:
    opts = _options(cfg, {"allowed_hosts"})
    hosts = opts.get("allowed_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"guard '{cfg.name}': options.allowed_hosts must be a list of hosts")

    def find(text: str, _stage: Stage) -> list[ContentFinding]:
        return leaks.find_exfiltration(text, allowed_hosts=hosts)

    return _SpanGuard(cfg.name, cfg.action, 2048, find)


class InjectionGuard:
    """Scores the whole text; a verdict at or above the threshold is one finding over it."""

    def __init__(self, name: str, action: Action, threshold: float) -> None:
        self.name = name
        self.action: Action = action
        self.max_match = 2048
        self._verdict = _VERDICT[action]
        self._threshold = threshold

    def inspect(self, text: str, stage: Stage) -> list[Finding]:
        if not text.strip():
            return []
        source: injection.Source = "user" if stage == "input" else "tool"
        verdict = injection.detect(text, source, threshold=self._threshold)
        if verdict.label != "injection":
            return []
        why = "; ".join(verdict.reasons[:3]) or "classifier"
        return [
            Finding(
                self.name,
                self._verdict,
                f"prompt injection (score {verdict.score:.2f}: {why}) in the {stage}",
                0,
                len(text),
                replacement="[REMOVED: prompt injection]",
            )
        ]


class ConversationInjectionGuard(InjectionGuard):
    """Also scores the newest user message with its conversation (``converse``).

    Accumulated session or principal risk at ``conversation_threshold`` is a finding even
    when every message alone stays under ``threshold``; so is a payload split over turns,
    which the recent tail read with the new message reveals.
    """

    def __init__(
        self,
        name: str,
        action: Action,
        threshold: float,
        *,
        risk: ConversationRisk,
        conversation_threshold: float,
    ) -> None:
        super().__init__(name, action, threshold)
        self.risk = risk
        self._conversation_threshold = conversation_threshold

    def converse(
        self, text: str, conversation: Conversation, *, remember: bool = True
    ) -> list[Finding]:
        if not text.strip():
            return []
        state = self.risk.observe(
            conversation.session, text, principal=conversation.principal, remember=remember
        )
        over_turns = state.conversation_risk >= self._conversation_threshold
        # A payload split over turns: the message alone passes, read with the tail it does not.
        split = state.alone_score < self._threshold <= state.message_score
        if not (over_turns or split):
            return []
        return [
            Finding(
                self.name,
                self._verdict,
                f"prompt injection over the conversation (risk {state.risk:.2f}: session "
                f"{state.session_risk:.2f}, principal {state.principal_risk:.2f}, "
                f"{state.suspicious_turns} of {state.turns} turns suspicious) in the input",
                0,
                len(text),
                replacement="[REMOVED: prompt injection]",
            )
        ]


def _injection(cfg: GuardSettings) -> Guard:
    opts = _options(
        cfg,
        {"threshold", "conversation", "conversation_threshold", "session_half_life_seconds",
         "principal_half_life_seconds"},
    )
    threshold = _fraction(cfg, opts, "threshold", 0.5)
    if not opts.get("conversation", False):
        return InjectionGuard(cfg.name, cfg.action, threshold)
    if cfg.stage == "output":
        raise ConfigError(
            f"gateway.guards['{cfg.name}'].options.conversation applies to the input stage"
        )
    risk = ConversationRisk(
        session_half_life=_positive(cfg, opts, "session_half_life_seconds", 900.0),
        principal_half_life=_positive(cfg, opts, "principal_half_life_seconds", 6 * 3600.0),
        store=_risk_store(cfg),
    )
    return ConversationInjectionGuard(
        cfg.name,
        cfg.action,
        threshold,
        risk=risk,
        conversation_threshold=_fraction(cfg, opts, "conversation_threshold", threshold),
    )


def _fraction(cfg: GuardSettings, opts: dict[str, Any], key: str, default: float) -> float:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise ConfigError(f"gateway.guards['{cfg.name}'].options.{key} must be in (0, 1]")
    return float(value)


def _positive(cfg: GuardSettings, opts: dict[str, Any], key: str, default: float) -> float:
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"gateway.guards['{cfg.name}'].options.{key} must be a positive number")
    return float(value)


def _risk_store(cfg: GuardSettings) -> RiskStore:
    if cfg.store in (None, "memory"):
        return MemoryRiskStore()
    if cfg.store == "database":
        raise ConfigError(
            f"gateway.guards['{cfg.name}'].store 'database' is not available for conversation "
            "risk: use 'memory' (one process) or 'redis' (every worker)"
        )
    return RedisRiskStore(_redis_client(cfg), prefix=cfg.redis_prefix)


def _redis_client(cfg: GuardSettings) -> Any:
    """A synchronous Redis client (guards run in worker threads); checked at start-up."""
    try:
        import redis  # noqa: PLC0415 -- the optional 'redis' extra
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"gateway.guards['{cfg.name}'].store 'redis' needs the 'redis' package: "
            "pip install 'tsuba[redis]'"
        ) from exc
    assert cfg.redis_url is not None  # GuardSettings requires it with store 'redis'
    try:
        return redis.Redis.from_url(
            cfg.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
        )
    except ValueError as exc:
        raise ConfigError(
            f"gateway.guards['{cfg.name}'].redis_url is not a valid Redis URL: {exc}"
        ) from exc


# -- pseudonymize and restore ---------------------------------------------------------------


class Pseudonyms:
    """The gateway's side of pseudonymization: one shared mapping store, scoped per request.

    ``scope`` names the conversation's mapping: the session (by a hash of its id, which is a
    bearer secret and never stored), kept in the shared store because any worker may serve
    the next turn; or, without sessions, the one request, whose answer comes back through
    the worker that sent it: that mapping stays in the request's memory and is never written.
    """

    # A session's mapping is kept 10% longer than the session and touched by each worker at
    # most once per tenth of the TTL: it always outlives its session, at one write a while.
    MARGIN = 0.1
    MAX_TRACKED = 100_000

    def __init__(self, store: MappingStore, guard: str, ttl_seconds: float = 3600.0) -> None:
        self.store = store
        self.guard = guard
        self._touch_every = ttl_seconds * self.MARGIN
        self._touched: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def touch(self, key: str) -> None:
        """Extend a session's mapping, unless this worker did so within the margin."""
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key)
            if last is not None and now - last < self._touch_every:
                return
        self.store.touch(key)
        with self._lock:
            self._touched[key] = now
            self._touched.move_to_end(key)
            while len(self._touched) > self.MAX_TRACKED:
                self._touched.popitem(last=False)

    def scope(self, session_id: str | None, request_id: str) -> PseudonymScope:
        if session_id is not None:
            key = "tss." + hashlib.sha256(session_id.encode()).hexdigest()[:48]
            return PseudonymScope(self, key, per_request=False)
        return PseudonymScope(self, "request", per_request=True)

    def drop_session(self, session_id: str) -> int:
        """Forget a session's values now (call when the session is deleted)."""
        return self.store.drop(self.scope(session_id, "").key)


class PseudonymScope:
    """One request's use of the mapping: assign on the way in, restore on the way out."""

    def __init__(self, owner: Pseudonyms, key: str, *, per_request: bool) -> None:
        self.owner = owner
        self.key = key
        self.per_request = per_request
        self.store: MappingStore = MemoryMappingStore() if per_request else owner.store
        self.mapping: dict[str, str] = {}
        self.unknown: list[str] = []
        self._touched = per_request

    def _touch(self) -> None:
        """The session is in use again: its placeholders live as long as it does."""
        if not self._touched:
            self.owner.touch(self.key)
            self._touched = True

    def assign(self, entity_type: str, value: str) -> str:
        self._touch()
        return self.store.placeholder_for(self.key, entity_type, value)

    def load(self) -> dict[str, str]:
        """Read the conversation's mapping (in a worker thread: it does I/O)."""
        self._touch()  # also on turns that add no value: the history still holds placeholders
        self.mapping = self.store.mapping(self.key)
        return self.mapping

    def end(self) -> None:
        """A request-scoped mapping is no longer needed once the answer is out."""
        if self.per_request:
            self.store.drop(self.key)

    def restore_text(self, text: str) -> str:
        return restore(text, self.mapping, unknown=self.unknown)

    def restore_arguments(self, arguments: str) -> str:
        """Tool-call arguments (JSON text): values go in as JSON strings, never break it."""
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return restore(arguments, self.mapping, unknown=self.unknown, escape=json_escape)
        return orjson.dumps(self._restore_json(parsed)).decode()

    def _restore_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.restore_text(value)
        if isinstance(value, list):
            return [self._restore_json(v) for v in value]
        if isinstance(value, dict):
            return {k: self._restore_json(v) for k, v in value.items()}
        return value

    def restore_result(self, result: dict[str, Any], route: str) -> bool:
        """Restore a non-streamed completion in place; whether anything changed."""
        changed = False
        for choice in result.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if route == "completions":
                changed |= _restore_field(choice, "text", self.restore_text)
                continue
            msg = choice.get("message")
            if not isinstance(msg, dict):
                continue
            changed |= _restore_field(msg, "content", self.restore_text)
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    changed |= _restore_field(fn, "arguments", self.restore_arguments)
            if isinstance(msg.get("function_call"), dict):
                changed |= _restore_field(msg["function_call"], "arguments",
                                          self.restore_arguments)
        return changed

    def findings(self) -> list[Finding]:
        """One flag per placeholder the answer had that this conversation has no value for."""
        return [
            Finding(
                self.owner.guard,
                Verdict.FLAG,
                f"placeholder {token} in the output has no value in this conversation "
                "(expired, or made up by the model); left as is",
            )
            for token in dict.fromkeys(self.unknown)
        ]


def _restore_field(obj: dict[str, Any], key: str, fn: Callable[[str], str]) -> bool:
    value = obj.get(key)
    if not isinstance(value, str) or "<" not in value:
        return False
    new = fn(value)
    if new == value:
        return False
    obj[key] = new
    return True


def conversation_for(
    principal: str, session_id: str | None, messages: Sequence[Any]
) -> Conversation:
    """The keys conversation risk accumulates under.

    With a server-side session, its id (hashed: the id is a bearer secret).  Without one the
    client resends the history, so its first message names the conversation.
    """
    if session_id is not None:
        basis = "session\x00" + session_id
    else:
        first = next((m for m in messages if isinstance(m, dict)), {})
        basis = "history\x00" + principal + "\x00" + orjson.dumps(first.get("content")).decode()
    return Conversation(hashlib.sha256(basis.encode()).hexdigest()[:48], principal)


def last_user_text(messages: Sequence[Any]) -> str:
    """The newest user message's text (text parts joined), or "" if the last is not a user's."""
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return ""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def build_pseudonyms(
    configs: Sequence[GuardSettings], platform: Platform, ttl_seconds: float
) -> Pseudonyms | None:
    """The shared mapping for every ``pseudonymize`` guard (they must agree on the store)."""
    chosen = [c for c in configs if c.action == "pseudonymize"]
    if not chosen:
        return None
    first = chosen[0]
    where = (first.store or "database", first.redis_url, first.redis_prefix)
    for other in chosen[1:]:
        if (other.store or "database", other.redis_url, other.redis_prefix) != where:
            raise ConfigError(
                f"gateway.guards['{other.name}'].store differs from guard '{first.name}': "
                "every pseudonymize guard must use the same mapping store"
            )
    ttl = timedelta(seconds=ttl_seconds * (1 + Pseudonyms.MARGIN))
    store: MappingStore
    if first.store == "redis":
        from tsuba.guards.anonymize.redis_store import RedisMappingStore  # noqa: PLC0415

        store = RedisMappingStore(
            _redis_client(first), platform.keys, ttl=ttl, prefix=first.redis_prefix
        )
    else:
        store = SqlMappingStore(platform.engine, platform.keys, ttl=ttl)
    return Pseudonyms(store, first.name, ttl_seconds)


def register() -> None:
    register_kind("pii", _pii)
    register_kind("secrets", _secrets)
    register_kind("leaks", _leaks)
    register_kind("injection", _injection)


register()
