"""The stage chain every inference request goes through, and what it records.

authenticate -> authorize (``model:invoke`` on ``model/<name>``) -> admit (limits) ->
guards(in) -> upstream -> guards(out) -> settle -> record.  ``Gateway`` holds one worker's
parts (built once, in the app's lifespan); ``Exchange`` is one request's account of what
each stage decided, turned into audit events that share one correlation id.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tsuba.core.config import ModelSettings, RouteSettings, Settings
from tsuba.core.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    TsubaError,
)
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity, new_event_id
from tsuba.core.identity import Authorizer
from tsuba.core.platform import Platform
from tsuba.gateway import content_guards  # also registers pii, secrets, injection, leaks
from tsuba.gateway import inference_metrics as m
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.context import (
    Admission,
    Authenticator,
    AuthRequest,
    Identity,
    Limiter,
    LimitRequest,
)
from tsuba.gateway.guards import (
    Assign,
    ContentBlocked,
    Finding,
    GuardChain,
    GuardRegistry,
    Verdict,
)
from tsuba.gateway.io_log import IoLog
from tsuba.gateway.recorder import EventRecorder
from tsuba.gateway.sessions import SessionStore
from tsuba.gateway.upstreams import Upstream, UpstreamPool
from tsuba.models.registry import ServingGate
from tsuba.soar.blocklist import IpBlocklist

log = logging.getLogger("tsuba.gateway")

ACTION = "model:invoke"
_NO_ROUTE = RouteSettings()


# -- stand-ins used only when a part is not configured -------------------------------------


class Unconfigured:
    """Refuses every request: without an authenticator the gateway fails closed."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def authenticate(self, request: AuthRequest) -> Identity:
        raise ConfigError(self.why)


class _Granted:
    headers: Mapping[str, str] = {}

    async def settle(self, actual_tokens: int, actual_cost: float = 0.0) -> None:
        return None

    async def release(self) -> None:
        return None


class NoLimits:
    """Admits everything: used when no limiter is built (limits are opt-in configuration)."""

    _granted = _Granted()

    async def admit(self, request: LimitRequest) -> Admission:
        return self._granted


def default_authenticator(platform: Platform) -> Authenticator:
    try:
        module = importlib.import_module("tsuba.gateway.auth")
    except ModuleNotFoundError as exc:
        if exc.name != "tsuba.gateway.auth":
            raise
        return Unconfigured("gateway authentication is not available in this installation")
    built: Authenticator = module.build_authenticator(
        platform.settings, platform.engine, platform.keys
    )
    return built


def default_limiter(platform: Platform) -> Limiter:
    try:
        module = importlib.import_module("tsuba.gateway.ratelimit")
    except ModuleNotFoundError as exc:
        if exc.name != "tsuba.gateway.ratelimit":
            raise
        return NoLimits()
    built: Limiter = module.build_limiter(platform.settings)
    return built


# -- one request -----------------------------------------------------------------------------


def _auth_failure(err: TsubaError) -> dict[str, Any]:
    """A refused credential for the summary event.  Detections group failures by credential
    (credential stuffing: many distinct ones from one address), so carry what is known."""
    failure: dict[str, Any] = {"outcome": "failure", "reason": err.message}
    if isinstance(err, AuthFailure):
        failure["reason"] = err.reason or err.message
        if err.method:
            failure["method"] = err.method
        if err.credential_id:
            failure["credential_id"] = err.credential_id
    return failure


@dataclass(slots=True)
class Exchange:
    """What happened to one request, stage by stage."""

    route: str
    method: str
    path: str
    client_ip: str
    correlation_id: str = field(default_factory=new_event_id)
    started: float = field(default_factory=time.perf_counter)
    identity: Identity | None = None
    model: str | None = None
    authz_reason: str | None = None
    limit: str | None = None
    findings: list[tuple[str, Finding]] = field(default_factory=list)
    upstream: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stream: bool = False
    ttft_seconds: float | None = None
    status: int = 200
    error: TsubaError | None = None
    session: str | None = None
    io_record: str | None = None
    admission: Admission | None = None

    def note_guard(self, stage: str, findings: tuple[Finding, ...] | list[Finding]) -> None:
        for f in findings:
            self.findings.append((stage, f))
            m.GUARDS.labels(f.guard, stage, f.verdict.label).inc()

    def attributes(self, elapsed_ms: float) -> dict[str, Any]:
        """What each stage decided, for the summary event."""
        err = self.error
        attrs: dict[str, Any] = {
            "route": self.route,
            "path": self.path,
            "status": self.status,
            "latency_ms": elapsed_ms,
            "stream": self.stream,
        }
        if self.identity is not None:
            attrs["auth"] = {
                "outcome": "success",
                "method": self.identity.method,
                "credential_id": self.identity.credential_id,
            }
        elif isinstance(err, AuthenticationError | ConfigError) and self.status in (401, 500):
            attrs["auth"] = _auth_failure(err)
        if self.authz_reason is not None:
            attrs["authz"] = {
                "allowed": not isinstance(err, AuthorizationError),
                "reason": self.authz_reason,
            }
        if self.limit is not None:
            attrs["limit"] = self.limit
        if self.findings:
            attrs["guards"] = [{"stage": s, **f.to_dict()} for s, f in self.findings]
        if self.upstream is not None:
            attrs["upstream"] = {
                "name": self.upstream,
                "status": self.upstream_status,
                "latency_ms": None
                if self.upstream_seconds is None
                else round(self.upstream_seconds * 1000, 3),
            }
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            attrs["tokens"] = {
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
            }
        if self.ttft_seconds is not None:
            attrs["ttft_ms"] = round(self.ttft_seconds * 1000, 3)
        if self.session is not None:
            attrs["session"] = self.session
        if self.io_record is not None:
            attrs["io_record"] = self.io_record
        if err is not None:
            attrs["error"] = {"code": err.code, "message": err.message}
        return attrs

    def events(self) -> list[SecurityEvent]:
        """The request's audit events: one summary, plus one finding per guard decision."""
        elapsed_ms = round((time.perf_counter() - self.started) * 1000, 3)
        principal = self.identity.principal if self.identity else None
        resource = f"model/{self.model}" if self.model else None
        err = self.error
        attrs = self.attributes(elapsed_ms)
        if isinstance(err, AuthenticationError) or (
            isinstance(err, ConfigError) and self.identity is None
        ):
            cls, activity, severity = EventClass.AUTHENTICATION, "logon", Severity.MEDIUM
        elif isinstance(err, AuthorizationError):
            cls, activity, severity = EventClass.AUTHORIZE_SESSION, "other", Severity.MEDIUM
        else:
            cls, activity = EventClass.API_ACTIVITY, "create"
            severity = Severity.INFO if self.status < 400 else Severity.LOW
            if self.status >= 500 or isinstance(err, RateLimitedError):
                severity = Severity.LOW
        target = f" {resource}" if resource else ""
        if err is None:
            message = f"{self.method} {self.path}{target}: {self.status} in {elapsed_ms:.1f} ms"
        else:
            message = f"{self.method} {self.path}{target}: {self.status} {err.message}"
        summary = SecurityEvent(
            event_class=cls,
            activity=activity,
            severity=severity,
            actor=principal,
            resource=resource,
            outcome=Outcome.SUCCESS if err is None else Outcome.FAILURE,
            message=message,
            correlation_id=self.correlation_id,
            src_ip=self.client_ip or None,
            attributes=attrs,
        )
        events = [summary]
        for stage, f in self.findings:
            events.append(
                SecurityEvent(
                    event_class=EventClass.DETECTION_FINDING,
                    activity="create",
                    severity=Severity.HIGH if f.verdict is Verdict.BLOCK else Severity.MEDIUM,
                    actor=principal,
                    resource=resource,
                    outcome=Outcome.FAILURE if f.verdict is Verdict.BLOCK else Outcome.SUCCESS,
                    message=f"guard '{f.guard}' {f.verdict.label} ({stage}): {f.reason}",
                    correlation_id=self.correlation_id,
                    src_ip=self.client_ip or None,
                    attributes={"stage": stage, "finding": f.to_dict(), "route": self.route},
                )
            )
        return events


# -- the parts of one worker ---------------------------------------------------------------


class Gateway:
    """Everything the inference routes need, opened once per worker."""

    def __init__(
        self,
        platform: Platform,
        *,
        authenticator: Authenticator | None = None,
        limiter: Limiter | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        settings = platform.settings
        self.platform = platform
        self.settings: Settings = settings
        gw = settings.gateway
        self.validation = gw.validation
        self.window_chars = gw.stream.window_chars
        self.models: dict[str, ModelSettings] = dict(gw.models)
        self.routes: dict[str, RouteSettings] = {str(k): v for k, v in gw.routes.items()}
        self.upstreams = UpstreamPool(settings, platform.keys)
        self.guards = GuardRegistry(gw.guards)
        # The mapping of pseudonymize guards, shared by all workers; expires with sessions.
        self.pseudonyms = content_guards.build_pseudonyms(
            gw.guards, platform, gw.sessions.ttl_seconds
        )
        self._owned: list[object] = []
        if authenticator is None:
            authenticator = default_authenticator(platform)
            self._owned.append(authenticator)
        if limiter is None:
            limiter = default_limiter(platform)
            self._owned.append(limiter)
        self.authenticator = authenticator
        self.limiter = limiter
        self._price = getattr(limiter, "cost", None)
        self._owns_authorizer = authorizer is None
        self.authorizer = authorizer or Authorizer(platform.engine)
        self.serving = ServingGate(platform.engine)
        self.blocked_ips = IpBlocklist(platform.engine)  # the block_ip playbook action's list
        self.recorder = EventRecorder(
            platform,
            durable=settings.audit.durability == "durable",
            batch_max=settings.audit.batch_max,
        )
        self.sessions = SessionStore(platform, gw.sessions)
        self.io_log = IoLog(platform, gw.io_log)
        if settings.audit.durability == "async":
            log.warning(
                "audit.durability is 'async': a request's audit record is committed just "
                "after its response and is lost if the process dies in between"
            )

    async def aclose(self) -> None:
        await self.upstreams.aclose()
        for part in self._owned:
            closer = getattr(part, "aclose", None)
            if closer is not None:
                await closer()
        self.recorder.close()
        if self._owns_authorizer:
            self.authorizer.close()

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """The spend of a call at the limiter's configured prices (0 where none is set)."""
        if self._price is None:
            return 0.0
        value = self._price(model, prompt_tokens, completion_tokens)
        return float(value) if value else 0.0

    # -- stages --------------------------------------------------------------------------
    async def authenticate(self, ex: Exchange, request: AuthRequest) -> Identity:
        if self.blocked_ips.blocked(ex.client_ip) is not None:
            raise AuthorizationError("requests from this address are blocked")
        try:
            identity = await self.authenticator.authenticate(request)
        except TsubaError:
            m.AUTHN.labels("unknown", "failure").inc()
            raise
        m.AUTHN.labels(identity.method, "success").inc()
        ex.identity = identity
        return identity

    def authorize(self, ex: Exchange, identity: Identity, model: str) -> None:
        """``model:invoke`` on ``model/<name>``; 403 naming the missing rule (default deny)."""
        ex.model = model
        decision = self.authorizer.authorize(
            identity.principal, ACTION, f"model/{model}", version=identity.policy_version
        )
        ex.authz_reason = decision.reason
        m.AUTHZ.labels("true" if decision.allowed else "false").inc()
        if not decision.allowed:
            raise AuthorizationError(
                f"'{identity.principal}' may not use model '{model}': {decision.reason}"
            )

    def allowed(self, identity: Identity, model: str) -> bool:
        try:
            return self.authorizer.authorize(
                identity.principal, ACTION, f"model/{model}", version=identity.policy_version
            ).allowed
        except TsubaError:
            return False

    def model(self, name: str, route: str) -> ModelSettings:
        cfg = self.models.get(name)
        if cfg is None:
            raise NotFoundError(f"model '{name}' does not exist")
        if route not in cfg.routes:
            raise NotFoundError(f"model '{name}' is not served on this route ({route})")
        if cfg.registry is not None:
            self.serving.ensure(cfg.registry)  # 403 while quarantined, retired or unverified
        return cfg

    def upstream(self, cfg: ModelSettings) -> Upstream:
        return self.upstreams.get(cfg.upstream)

    def route(self, name: str) -> RouteSettings:
        return self.routes.get(name, _NO_ROUTE)

    async def admit(
        self, ex: Exchange, identity: Identity, model: str, tokens: int, cost: float
    ) -> Admission:
        try:
            admission = await self.limiter.admit(
                LimitRequest(identity.principal, model, tokens, cost)
            )
        except RateLimitedError as exc:
            ex.limit = f"refused: {exc.message}"
            m.LIMITS.labels("refused").inc()
            raise
        ex.limit = f"admitted ({tokens} tokens reserved)"
        m.LIMITS.labels("admitted").inc()
        ex.admission = admission
        return admission

    def chain(self, route: str, model: str, stage: str) -> GuardChain:
        return self.guards.chain(route, model, "input" if stage == "input" else "output")

    def guard_text(
        self, ex: Exchange, chain: GuardChain, text: str, assign: Assign | None = None
    ) -> str:
        """Run ``chain`` on one text: ContentBlocked on block, the redacted text otherwise."""
        result = chain.run(text, assign)
        if result.findings:
            ex.note_guard(chain.stage, result.findings)
            if result.verdict is Verdict.BLOCK:
                raise ContentBlocked(chain.stage, result.findings)
        return result.text

    async def record(self, ex: Exchange) -> None:
        m.REQUESTS.labels(
            ex.route,
            ex.model if ex.model in self.models else "unknown",
            "ok" if ex.error is None else ex.error.code,
        ).inc()
        m.LATENCY.labels(ex.route).observe(time.perf_counter() - ex.started)
        await self.recorder.record(ex.events())
