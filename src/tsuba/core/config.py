"""One settings model for every part of tsuba.

Sources, highest priority first: explicit overrides, ``TSUBA_*`` environment variables
(nested with ``__``, e.g. ``TSUBA_SERVER__PORT``), ``tsuba.toml`` in the data directory,
then defaults.  The data directory itself comes from ``TSUBA_HOME`` (default ``./.tsuba``)
because it must be known before the file inside it can be read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from tsuba.core.errors import ConfigError
from tsuba.soar.actions import SmtpConfig  # pydantic-only: cheap to load

CONFIG_FILE = "tsuba.toml"
DEFAULT_HOME = Path(".tsuba")


def home_from_env() -> Path:
    raw = os.environ.get("TSUBA_HOME")
    return Path(raw) if raw else DEFAULT_HOME


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # Bearer token for admin reads (audit entries); unset disables those routes.
    admin_token: SecretStr | None = None


class KeysSettings(_Section):
    """Where keys live.  ``local`` is a keyring file encrypted under the master key."""

    backend: Literal["local", "pkcs11", "vault"] = "local"
    keyring_file: str = "keyring.json"
    master_key_file: str = "master.key"
    # PKCS#11 (an HSM, or SoftHSM2 in tests)
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    # HashiCorp Vault Transit
    vault_addr: str | None = None
    vault_token: SecretStr | None = None
    vault_mount: str = "transit"
    vault_namespace: str | None = None


class AuditSettings(_Section):
    signing_key: str = "audit-signing"
    sth_interval_seconds: float = Field(default=60.0, gt=0)
    batch_max: int = Field(default=4096, ge=1)
    # "durable": a request's audit record is committed before its response completes;
    # "async": it is committed just after, trading that guarantee for latency.
    durability: Literal["durable", "async"] = "durable"


class AuthSettings(_Section):
    """Gateway authentication: API keys, JWT/OIDC issuers, HMAC request signing."""

    class Issuer(_Section):
        """One trusted OAuth2/OIDC issuer of JWT bearer tokens.

        Only asymmetric algorithms are accepted: with ``none`` anyone can mint a token, and
        with HS* a verifier holding only the issuer's public key could be tricked into using
        that public key as an HMAC secret (key confusion).
        """

        issuer: str = Field(min_length=1)
        audience: list[str] = Field(min_length=1)
        # None: read jwks_uri from {issuer}/.well-known/openid-configuration
        jwks_uri: str | None = None
        algorithms: list[str] = Field(default=["RS256", "ES256", "EdDSA"], min_length=1)
        leeway_seconds: int = Field(default=30, ge=0, le=300)
        principal_claim: str = Field(default="sub", min_length=1)
        scopes_claim: str = Field(default="scope", min_length=1)
        required_scopes: list[str] = []

        @field_validator("audience", mode="before")
        @classmethod
        def _one_or_many(cls, value: object) -> object:
            return [value] if isinstance(value, str) else value

        @field_validator("algorithms")
        @classmethod
        def _asymmetric_only(cls, value: list[str]) -> list[str]:
            asymmetric = ("EdDSA", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
                          "RS256", "RS384", "RS512")
            bad = [a for a in value if a not in asymmetric]
            if bad:
                allowed = ", ".join(asymmetric)
                raise ValueError(
                    f"algorithm(s) {', '.join(bad)} not allowed: use only {allowed} "
                    "('none' and HS* are refused)"
                )
            return value

        @field_validator("issuer", "jwks_uri")
        @classmethod
        def _https_or_loopback(cls, value: str | None) -> str | None:
            from urllib.parse import urlsplit  # noqa: PLC0415

            if value is None:
                return None
            parts = urlsplit(value)
            loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
            if not parts.hostname or not (
                parts.scheme == "https" or (parts.scheme == "http" and loopback)
            ):
                raise ValueError(f"{value!r} must be an https:// URL (http only on loopback)")
            return value

    methods: list[Literal["api_key", "jwt", "hmac"]] = ["api_key", "jwt", "hmac"]
    # HMAC-SHA256 key in the key store that peppers API key hashes (created on demand).
    pepper_key: str = "apikey-pepper"
    cache_size: int = Field(default=100_000, ge=1)
    # 0: read the revocation version on every request; at most 1 s so revocation holds.
    revocation_check_seconds: float = Field(default=0.0, ge=0, le=1)
    last_used_interval_seconds: float = Field(default=60.0, ge=1)
    issuers: list[Issuer] = []
    jwks_max_age_seconds: float = Field(default=600.0, gt=0)
    jwks_min_refetch_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    signing_window_seconds: int = Field(default=300, ge=1, le=3600)
    replay_backend: Literal["memory", "redis"] = "memory"
    replay_redis_url: SecretStr | None = None
    replay_max_entries: int = Field(default=1_000_000, ge=1)


class LimitsSettings(_Section):
    """Rate limits, quotas and budgets; backend ``memory`` (one process) or ``redis``.

    Four scopes apply to every request at once, each with its own counters: ``total`` (all
    traffic through the gateway), each model, each principal, and each principal on each
    model.  A request is admitted only if every applicable limit has room (all or nothing).
    Token and spend budgets count in calendar windows in UTC (minute, day, month); request
    rates use GCRA.  The defaults are generous per-principal limits, so a runaway client is
    throttled out of the box while normal use never meets them.
    """

    class Values(_Section):
        """One set of limits.  Unset: no limit (in an override: the default's); 0 refuses all."""

        requests: int | None = Field(default=None, ge=0)  # per interval_seconds (GCRA)
        interval_seconds: float = Field(default=60.0, gt=0, le=86_400)
        burst: int | None = Field(default=None, ge=1)  # back-to-back requests; default: requests
        tokens_per_minute: int | None = Field(default=None, ge=0)
        tokens_per_day: int | None = Field(default=None, ge=0)
        spend_per_day: float | None = Field(default=None, ge=0)  # in spend_unit
        spend_per_month: float | None = Field(default=None, ge=0)
        concurrent: int | None = Field(default=None, ge=0)

    class PrincipalModel(Values):
        """Limits for each matching principal on each matching model (first match applies)."""

        principal: str = "*"
        model: str = "**"

        @field_validator("principal", "model")
        @classmethod
        def _pattern(cls, value: str) -> str:
            return LimitsSettings.check_pattern(value)

    class Price(_Section):
        input_per_million: float = Field(ge=0)  # spend_unit per million prompt tokens
        output_per_million: float = Field(ge=0)  # spend_unit per million completion tokens

    backend: Literal["memory", "redis"] = "memory"
    redis_url: SecretStr | None = None
    # Braces keep every key in one Redis Cluster slot: one script touches several of them.
    key_prefix: str = Field(default="{tsuba:rl}:", min_length=1, max_length=64)
    # A reservation never settled (crashed worker) is refunded after this long.
    reservation_timeout_seconds: float = Field(default=600.0, gt=0, le=86_400)
    spend_unit: str = Field(default="USD", min_length=1, max_length=16)
    total: Values = Values()
    model_defaults: Values = Values()
    models: dict[str, Values] = {}  # model pattern -> overrides of model_defaults
    principal_defaults: Values = Values(
        requests=600, tokens_per_minute=200_000, tokens_per_day=5_000_000, concurrent=32
    )
    principals: dict[str, Values] = {}  # principal pattern -> overrides of principal_defaults
    principal_models: list[PrincipalModel] = []
    prices: dict[str, Price] = {}  # model pattern -> price of its tokens

    @field_validator("models", "principals", "prices")
    @classmethod
    def _patterns(cls, value: dict[str, Any]) -> dict[str, Any]:
        for pattern in value:
            cls.check_pattern(pattern)
        return value

    @staticmethod
    def check_pattern(pattern: str) -> str:
        """Principal and model patterns use the resource glob rules of tsuba.core.identity."""
        from tsuba.core.errors import InputError  # noqa: PLC0415
        from tsuba.core.identity.patterns import compile_pattern  # noqa: PLC0415

        try:
            compile_pattern(pattern)
        except InputError as exc:
            raise ValueError(str(exc)) from exc
        return pattern


class UpstreamSettings(_Section):
    """An OpenAI-compatible model server the gateway forwards to.

    The host of ``base_url`` must be in ``gateway.allowed_upstream_hosts``: configuration
    alone never lets the gateway reach a host nobody allow-listed.
    """

    base_url: str = Field(min_length=1)
    # Where the upstream's own API key comes from: an environment variable, or an envelope
    # file (KEK "data") written by tsuba.gateway.upstreams.store_credential.
    credential_env: str | None = None
    credential_file: str | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    retries: int = Field(default=1, ge=0, le=5)
    max_connections: int = Field(default=256, ge=1, le=10_000)


RouteName = Literal["chat", "completions", "embeddings", "predict"]
DataClass = Literal["public", "internal", "confidential", "restricted"]


class ModelSettings(_Section):
    """A model clients may name, and the upstream that serves it."""

    upstream: str = Field(min_length=1)
    upstream_model: str | None = None  # the upstream's name for it (default: the same)
    routes: list[RouteName] = ["chat", "completions"]
    # Output tokens assumed when a request sets no max_tokens (what a budget reserves).
    default_max_tokens: int = Field(default=1024, ge=1)
    # The registered model (NAME or NAME:VERSION) behind this name: when set, it is served only
    # while the model registry allows it (registered, signature verified, not quarantined or
    # retired), checked per request with at most a second of caching.
    registry: str | None = None


class GuardSettings(_Section):
    """One guard in the chain; ``routes``/``models`` select where it applies ("*": all)."""

    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1)  # "word" is built in
    stage: Literal["input", "output", "both"] = "both"
    # "pseudonymize": pii and secrets on the input stage only; values come back in the answer.
    action: Literal["block", "redact", "flag", "pseudonymize"] = "block"
    routes: list[str] = ["*"]
    models: list[str] = ["*"]
    options: dict[str, Any] = {}
    # State shared by every worker: pseudonym mappings (default "database") and conversation
    # risk of the injection guard (default "memory": one process).  "redis" needs redis_url.
    store: Literal["memory", "database", "redis"] | None = None
    redis_url: SecretStr | None = None
    redis_prefix: str = Field(default="tsuba:guards:", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _pseudonymize_and_store(self) -> GuardSettings:
        where = f"gateway.guards['{self.name}']"
        if self.action == "pseudonymize":
            if self.kind not in ("pii", "secrets") or self.stage != "input":
                raise ValueError(
                    f"{where}.action 'pseudonymize' needs kind 'pii' or 'secrets' and "
                    "stage 'input' (placeholders are restored in the answer)"
                )
            if self.store == "memory":
                raise ValueError(
                    f"{where}.store 'memory' cannot hold pseudonyms: every worker must see "
                    "the same mapping; use 'database' or 'redis'"
                )
        if self.store == "redis" and self.redis_url is None:
            raise ValueError(f"{where}.redis_url must be set when store is 'redis'")
        return self


class RouteSettings(_Section):
    """Per-route switches, keyed by route name (chat, completions, embeddings, predict)."""

    io_log: bool = False  # store prompts and responses, encrypted, for the retention period
    classification: DataClass = "internal"  # decides the I/O log retention
    sessions: bool = False  # server-side conversation state via x-tsuba-session-id


class ValidationSettings(_Section):
    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    max_messages: int = Field(default=512, ge=1)
    max_input_chars: int = Field(default=1_000_000, ge=1)
    max_output_tokens: int = Field(default=32_768, ge=1)
    max_n: int = Field(default=8, ge=1)
    max_embedding_inputs: int = Field(default=2048, ge=1)
    max_features: int = Field(default=100_000, ge=1)
    # A client that has not sent its headers / its body in this time is disconnected.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)


class StreamSettings(_Section):
    # Output guards inspect at least this many new characters before they are released.
    window_chars: int = Field(default=16, ge=1, le=65_536)


class SessionSettings(_Section):
    ttl_seconds: float = Field(default=3600.0, gt=0)
    max_turns: int = Field(default=200, ge=1)
    purge_interval_seconds: float = Field(default=300.0, gt=0)


class IoLogSettings(_Section):
    kek: str = "data"
    retention_days: dict[DataClass, float] = {
        "public": 90.0,
        "internal": 30.0,
        "confidential": 7.0,
        "restricted": 1.0,
    }
    purge_interval_seconds: float = Field(default=3600.0, gt=0)


class GatewaySettings(_Section):
    """Inference gateway: upstreams, models, routes, validation, sessions, I/O log."""

    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    upstreams: dict[str, UpstreamSettings] = {}
    models: dict[str, ModelSettings] = {}
    # "host" or "host:port"; an upstream elsewhere is refused at start-up.
    allowed_upstream_hosts: list[str] = []
    guards: list[GuardSettings] = []
    routes: dict[RouteName, RouteSettings] = {}
    validation: ValidationSettings = ValidationSettings()
    stream: StreamSettings = StreamSettings()
    sessions: SessionSettings = SessionSettings()
    io_log: IoLogSettings = IoLogSettings()


Priority = Literal["P0", "P1", "P2", "P3"]


class SiemSinkSettings(_Section):
    """One SIEM destination the response loop forwards every event to (at least once)."""

    # ocsf_http: OCSF JSON POSTed; cef_syslog/syslog: RFC 5424 (CEF in the message, or plain)
    # to host:port; ecs_file/ndjson_file: rotated files of ECS or OCSF/CEF lines; ecs_http:
    # Elastic _bulk; splunk_hec: Splunk HTTP Event Collector.
    kind: Literal["ocsf_http", "cef_syslog", "syslog", "ecs_file", "ecs_http", "splunk_hec",
                  "ndjson_file"]
    target: str = Field(min_length=1)  # URL, host:port, or file path (relative: in home)
    # Names the sink's durable bus cursor: keep it when editing the list (default: kind).
    name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    format: Literal["ocsf", "cef", "ecs"] = "ocsf"  # ndjson_file only
    transport: Literal["udp", "tcp", "tls"] = "tcp"  # syslog kinds
    tls_ca_file: str | None = None  # trust this CA for TLS syslog / https (default: system)
    token: SecretStr | None = None  # splunk_hec token, or a bearer token for ocsf/ecs http
    index: str = "tsuba-events"  # ecs_http index / splunk_hec index
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_bytes: int = Field(default=100 * 2**20, ge=1024)  # file kinds: rotate past this
    backups: int = Field(default=5, ge=0, le=1000)
    min_severity: Literal["info", "low", "medium", "high", "critical"] | None = None

    @property
    def subscriber(self) -> str:
        return f"soar.siem.{self.name or self.kind}"


class SoarSettings(_Section):
    """The response loop that ``tsuba up`` (or ``tsuba soar serve``) runs: live detection,
    incidents, automatic playbooks, SLA escalation, SIEM forwarding, HTTP ingest."""

    enabled: bool = True
    builtin_rules: bool = True
    rules: list[str] = []  # rule files in addition to the built-in pack (relative: in home)
    playbooks_dir: str = "playbooks"  # *.yaml / *.yml / *.json run on matching incidents
    actor: str = Field(default="tsuba.soar", min_length=1, max_length=128)
    respond_within_seconds: dict[Priority, float] = {}  # SLA overrides, e.g. {P1 = 7200}
    dedup_window_seconds: float = Field(default=3600.0, gt=0)
    correlate_window_seconds: float = Field(default=3600.0, gt=0)
    sla_check_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # One loop per database: the holder renews a lease; others wait as standby.
    lease_seconds: float = Field(default=15.0, ge=2, le=600)
    sinks: list[SiemSinkSettings] = []
    # A sink that keeps failing is retried with backoff doubling up to the maximum (events
    # wait, in order, and show as lag); only after this many attempts is an event set aside
    # as a dead letter.  The defaults ride out about an hour of SIEM outage.
    siem_max_attempts: int = Field(default=70, ge=1, le=1_000_000)
    siem_backoff_max_seconds: float = Field(default=60.0, gt=0, le=3600)
    ingest_enabled: bool = True  # POST /v1/soar/ingest/{falco,trivy}
    ingest_max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    trivy_min_severity: Literal["low", "medium", "high", "critical"] = "high"
    smtp: SmtpConfig | None = None  # where the playbooks' email action sends from
    # Where rotate_api_key keeps each replacement key, encrypted with the key store, for an
    # operator to hand over (relative: in home); unset, the new secret is never kept.
    rotated_keys_dir: str | None = None

    @field_validator("respond_within_seconds")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if v <= 0]
        if bad:
            raise ValueError(f"response time for {', '.join(bad)} must be positive seconds")
        return value

    @field_validator("sinks")
    @classmethod
    def _unique(cls, value: list[SiemSinkSettings]) -> list[SiemSinkSettings]:
        names = [s.subscriber for s in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two sinks share the name {dup[0].removeprefix('soar.siem.')!r}: "
                             "give each sink of one kind its own 'name'")
        return value


class Settings(BaseSettings):
    """Everything configurable.  Secrets are ``SecretStr`` so they never print by accident."""

    model_config = SettingsConfigDict(
        env_prefix="TSUBA_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = DEFAULT_HOME
    database_url: SecretStr | None = None
    master_key: SecretStr | None = None
    master_passphrase: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = ServerSettings()
    keys: KeysSettings = KeysSettings()
    audit: AuditSettings = AuditSettings()
    gateway: GatewaySettings = GatewaySettings()
    soar: SoarSettings = SoarSettings()

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if not raw.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql:// (or a driver form)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    # -- derived paths -------------------------------------------------------------------
    def path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.home / p

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'tsuba.db').resolve()}"

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by a marker."""
        data = self.model_dump(mode="json")
        _redact(self, data)
        return data


def _redact(model: BaseModel, data: dict[str, Any]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name == "database_url" and isinstance(value, SecretStr):
            data[name] = make_url(value.get_secret_value()).render_as_string(hide_password=True)
        elif isinstance(value, SecretStr):
            data[name] = "**********"
        elif isinstance(value, BaseModel):
            _redact(value, data[name])


def _describe(exc: ValidationError, source: Path | None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"]) or "(root)"
    where = f" (in {source} or TSUBA_* environment)" if source else " (TSUBA_* environment)"
    if err["type"] == "extra_forbidden":
        return f"config error: unknown key '{loc}'{where}"
    return f"config error: {loc}: {err['msg']}{where}"


def load_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Read settings for the data directory ``home`` (or ``TSUBA_HOME``, or ``./.tsuba``)."""
    resolved = home if home is not None else home_from_env()
    toml_path = resolved / CONFIG_FILE
    # The file's location depends on ``home``, known only now: bind it in a subclass.
    bound = type(
        "Settings",
        (Settings,),
        {"model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": toml_path})},
    )
    try:
        settings: Settings = bound(home=resolved, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, toml_path if toml_path.exists() else None)) from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"config error: cannot read {toml_path}: {exc}") from exc
    return settings
