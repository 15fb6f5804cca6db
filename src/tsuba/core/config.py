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

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from tsuba.core.errors import ConfigError

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
    """Rate limits, quotas and budgets; backend ``memory`` (one process) or ``redis``."""


class GatewaySettings(_Section):
    """Inference gateway: upstreams, models, routes, validation, sessions, I/O log."""

    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()


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
