"""Policy at serving time: a model is served only if registered, verified and not quarantined.

The status lives in the database, so every process sees a quarantine.  A gate keeps each
answer for at most ``cache_seconds`` (never more than one second), so a quarantine stops a
model's traffic everywhere within a second, and at once in the process that made it.  A
failure to read the registry refuses the model (fail closed) and is never cached.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.errors import AuthorizationError, InputError, StorageError
from tsuba.core.storage import reader
from tsuba.models.registry.records import ModelRef
from tsuba.models.registry.service import on_status_change
from tsuba.models.registry.tables import ModelVersionRow

MAX_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class ServingPolicy:
    """What a model must satisfy to be served; every switch defaults to the strict side."""

    require_registered: bool = True
    require_verified: bool = True
    block_quarantined: bool = True
    block_retired: bool = True
    cache_seconds: float = MAX_CACHE_SECONDS

    def __post_init__(self) -> None:
        if not 0 <= self.cache_seconds <= MAX_CACHE_SECONDS:
            raise InputError(
                f"serving cache_seconds must be between 0 and {MAX_CACHE_SECONDS} so that a "
                "quarantine takes effect within a second"
            )


@dataclass(frozen=True)
class ServingDecision:
    model: str
    allowed: bool
    reason: str
    version: str | None = None
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "allowed": self.allowed, "reason": self.reason,
                "version": self.version, "status": self.status}


class ModelNotServableError(AuthorizationError):
    code = "model_not_servable"

    def __init__(self, decision: ServingDecision) -> None:
        super().__init__(f"model {decision.model} may not be served: {decision.reason}")
        self.decision = decision


_gates: weakref.WeakSet[ServingGate] = weakref.WeakSet()


def _reset_gates(name: str, _version: str) -> None:
    for gate in list(_gates):
        gate.invalidate(name)


on_status_change(_reset_gates)


class ServingGate:
    def __init__(
        self,
        engine: Engine,
        policy: ServingPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = reader(engine)
        self.policy = policy or ServingPolicy()
        self.clock = clock
        self._cache: dict[str, tuple[float, ServingDecision]] = {}
        self._lock = threading.Lock()
        _gates.add(self)

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                for key in [k for k in self._cache if k == name or k.startswith(name + ":")]:
                    del self._cache[key]

    def check(self, model: str) -> ServingDecision:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(model)
        if hit is not None and hit[0] > now:
            return hit[1]
        decision = self._decide(model)
        if self.policy.cache_seconds > 0:
            with self._lock:
                self._cache[model] = (now + self.policy.cache_seconds, decision)
        return decision

    def ensure(self, model: str) -> ServingDecision:
        """The decision for ``model``; ModelNotServableError when it may not be served."""
        decision = self.check(model)
        if not decision.allowed:
            raise ModelNotServableError(decision)
        return decision

    def _decide(self, model: str) -> ServingDecision:
        policy = self.policy
        try:
            ref = ModelRef.parse(model)
        except InputError:
            if policy.require_registered:
                return ServingDecision(model, False, "not a registered model name")
            return ServingDecision(model, True, "unregistered models are allowed")
        row = self._lookup(ref)
        if row is None:
            if policy.require_registered:
                return ServingDecision(
                    model, False, "it is not registered ('tsuba model register')"
                )
            return ServingDecision(model, True, "unregistered models are allowed")
        version, status, verified_at = row
        refuse = (
            (status == "quarantined" and policy.block_quarantined, "it is quarantined"),
            (status == "retired" and policy.block_retired, "it is retired"),
            (verified_at is None and policy.require_verified,
             "its files are not verified against its signature"),
        )
        for blocked, reason in refuse:
            if blocked:
                return ServingDecision(model, False, reason, version, status)
        return ServingDecision(model, True, "registered, verified and not quarantined",
                               version, status)

    def _lookup(self, ref: ModelRef) -> tuple[str, str, Any] | None:
        cols = select(ModelVersionRow.version, ModelVersionRow.status,
                      ModelVersionRow.verified_at).where(ModelVersionRow.name == ref.name)
        if ref.version is not None:
            query = cols.where(ModelVersionRow.version == ref.version)
        else:
            # A bare name is its newest version that is not retired (else its newest).
            query = cols.order_by(
                (ModelVersionRow.status == "retired").asc(), ModelVersionRow.id.desc()
            ).limit(1)
        try:
            with Session(self.engine) as session:
                found = session.execute(query).first()
        except sa_exc.SQLAlchemyError as exc:
            raise StorageError(
                f"cannot read the model registry, so model {ref} is refused: "
                f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
            ) from exc
        return None if found is None else (found[0], found[1], found[2])


_default_gates: weakref.WeakKeyDictionary[Engine, dict[ServingPolicy, ServingGate]] = (
    weakref.WeakKeyDictionary()
)
_default_lock = threading.Lock()


def ensure_servable(
    model: str, engine: Engine, policy: ServingPolicy | None = None
) -> ServingDecision:
    """Refuse (ModelNotServableError) a model that is not registered, verified and active.

    ``model`` is ``name`` (its newest version that is not retired) or ``name:version``.
    Gates are shared per engine and policy, so repeated calls use one cache.
    """
    chosen = policy or ServingPolicy()
    with _default_lock:
        per_engine = _default_gates.setdefault(engine, {})
        gate = per_engine.get(chosen)
        if gate is None:
            gate = per_engine[chosen] = ServingGate(engine, chosen)
    return gate.ensure(model)


__all__ = [
    "ModelNotServableError",
    "ServingDecision",
    "ServingGate",
    "ServingPolicy",
    "ensure_servable",
]
