"""Every built-in playbook action, and the one registry the CLI and the response loop share.

``builtin_actions(platform, incidents)`` maps action names to actions that act as the
incident service's actor and report through the platform (audit log, then bus):

=================  ==========================================================  ===========
action             parameters                                                  destructive
=================  ==========================================================  ===========
incident_note      incident, text (``note`` is the same action)                no
webhook            url, text (Slack / Teams incoming-webhook JSON)             no
email              to (one or a list), subject, text; needs ``smtp``           no
revoke_api_key     prefix                                                      yes
rotate_api_key     prefix                                                      yes
block_principal    principal                                                   yes
block_ip           ip (address or network), for (e.g. 24h), reason, incident   yes
quarantine_model   model (name:version), reason                                yes
rotate_key         key (a key-store name), from_version                        yes
=================  ==========================================================  ===========

Each action is idempotent: when what it would do is already so (key revoked, principal
disabled, address blocked, model quarantined, key past ``from_version``) it says so and
succeeds.  A failure raises; the runner retries it and then escalates.

Importing this module loads pydantic and the standard library only, so the settings can
embed :class:`SmtpConfig`; the services an action needs load when the actions are built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tsuba.core.errors import ConfigError, ConflictError, InputError, TsubaError

if TYPE_CHECKING:
    from tsuba.core.config import Settings
    from tsuba.core.keys import KeyManager
    from tsuba.core.platform import Platform
    from tsuba.soar.incidents import IncidentService
    from tsuba.soar.playbooks import Action, FunctionAction

SMTP_PASSWORD_FILE = "credentials/smtp.tse"  # noqa: S105 - a path, not a password
_SMTP_AAD = b"tsuba-smtp-password\x00"
_ROTATED_AAD = b"tsuba-rotated-api-key\x00"
MAX_RECIPIENTS = 50
MAX_SUBJECT = 200
MAX_BODY = 100_000


class SmtpDeliveryError(TsubaError):
    """The SMTP server could not be reached, or would not take the message."""

    code = "smtp"


# A plain dot-atom address (no quoted local parts, comments or IP literals): all a
# notification needs, and nothing a header could be smuggled through.
_ADDR = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def _address(text: str, what: str) -> Address:
    if not isinstance(text, str) or len(text) > 254 or not _ADDR.fullmatch(text.strip()):
        raise InputError(f"{what} {text!r} is not an e-mail address (user@domain.tld)")
    try:
        return Address(addr_spec=text.strip())
    except (ValueError, IndexError, MessageError) as exc:
        raise InputError(f"{what} {text!r} is not an e-mail address: {exc}") from None


class SmtpConfig(BaseModel):
    """Where the ``email`` action sends from.  The password is never written here: name an
    environment variable (``password_env``) or a key-store-encrypted file
    (``password_file``, written by :func:`store_smtp_password`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded (port 587); ssl: TLS from the start (465);
    # none: no TLS, and then no login either (a local relay only).
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    password_file: str | None = None  # relative: in the data directory
    from_address: str
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    ca_file: str | None = None  # trust this CA for the server's certificate (default: system)
    # Recipients must be at these domains (empty: any).  Parameters can come from an alert,
    # so this keeps a crafted event from mailing incident details to an outsider.
    allowed_domains: list[str] = []

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        try:
            return str(_address(value, "from_address").addr_spec)
        except InputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return sorted({d.strip().lower().lstrip("@") for d in value if d.strip()})

    @model_validator(mode="after")
    def _credentials(self) -> SmtpConfig:
        sources = [s for s in (self.password_env, self.password_file) if s]
        if self.username is not None and len(sources) != 1:
            raise ValueError("a username needs exactly one of password_env or password_file")
        if self.username is None and sources:
            raise ValueError("a password is set but no username")
        if self.username is not None and self.security == "none":
            raise ValueError("a login without TLS would send the password in clear: use "
                             "security starttls or ssl")
        return self

    def password(self, *, keys: KeyManager | None = None, home: Path | None = None) -> str | None:
        """The login password from its environment variable or encrypted file."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(f"SMTP password: environment variable {self.password_env} "
                                  "is unset or empty")
            return value
        if self.password_file is None:
            return None
        if keys is None:
            raise ConfigError("SMTP password_file needs the key store")
        from tsuba.core.keys.envelope import decrypt  # noqa: PLC0415 - keeps the import light

        path = Path(self.password_file)
        if not path.is_absolute() and home is not None:
            path = home / path
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"SMTP password: cannot read {path}: {exc.strerror}") from None
        return decrypt(keys, blob, _SMTP_AAD + self.host.encode()).decode()


def store_smtp_password(settings: Settings, keys: KeyManager, host: str, secret: str) -> Path:
    """Encrypt the SMTP password (KEK "data", bound to ``host``) into the data directory;
    set ``password_file`` to the returned path."""
    from tsuba.core.keys.envelope import DEFAULT_KEK, encrypt  # noqa: PLC0415
    from tsuba.core.keys.files import atomic_write  # noqa: PLC0415

    if not secret:
        raise InputError("the SMTP password is empty")
    path = settings.path(SMTP_PASSWORD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, encrypt(keys, DEFAULT_KEK, secret.encode(), _SMTP_AAD + host.encode()))
    return path


def _recipients(value: Any, allowed: list[str]) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise InputError("email needs 'to': an address or a list of addresses")
    if len(items) > MAX_RECIPIENTS:
        raise InputError(f"email: at most {MAX_RECIPIENTS} recipients")
    out: list[str] = []
    for item in items:
        addr = _address(item, "recipient")
        if allowed and addr.domain.lower() not in allowed:
            raise InputError(f"recipient {addr.addr_spec} is not at an allowed domain "
                             f"({', '.join(allowed)}): see smtp.allowed_domains")
        out.append(addr.addr_spec)
    return out


def build_message(cfg: SmtpConfig, params: dict[str, Any]) -> EmailMessage:
    """The message the ``email`` action sends; its Message-ID is derived from its content,
    so a resend after an uncertain failure is recognisable as the same message."""
    to = _recipients(params.get("to"), cfg.allowed_domains)
    subject, text = params.get("subject"), params.get("text")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT or \
            any(c in subject for c in "\r\n\0"):
        raise InputError(f"email needs a 'subject': one line of at most {MAX_SUBJECT} "
                         "characters")
    if not isinstance(text, str) or not text or len(text) > MAX_BODY:
        raise InputError(f"email needs a 'text' of 1 to {MAX_BODY} characters")
    digest = hashlib.sha256("\0".join([*to, subject, text]).encode()).hexdigest()[:24]
    msg = EmailMessage()
    msg["From"] = cfg.from_address
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<tsuba.{digest}@{cfg.from_address.split('@')[1]}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    msg.set_content(text)
    return msg


def send_email(cfg: SmtpConfig, msg: EmailMessage, password: str | None) -> str:
    """Deliver ``msg``; raises with what went wrong and what to check."""
    where = f"{cfg.host}:{cfg.port}"
    context = ssl.create_default_context(cafile=cfg.ca_file)
    try:
        client: smtplib.SMTP
        if cfg.security == "ssl":
            client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds,
                                      context=context)
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
        with client:
            if cfg.security == "starttls":
                client.starttls(context=context)
            if cfg.username is not None:
                client.login(cfg.username, password or "")
            refused = client.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise ConfigError(f"SMTP server {where} refused the login of {cfg.username!r} "
                          f"({exc.smtp_code}): check the SMTP username and password") from None
    except smtplib.SMTPNotSupportedError:
        raise ConfigError(f"SMTP server {where} does not offer STARTTLS: use security ssl "
                          "(port 465) or a server that does") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS with SMTP server {where} failed: {exc.reason or exc}; "
                          "check host, port, security and ca_file") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise InputError(f"SMTP server {where} refused every recipient: "
                         f"{', '.join(sorted(exc.recipients))}") from None
    except smtplib.SMTPResponseException as exc:
        raise SmtpDeliveryError(f"SMTP server {where} answered {exc.smtp_code}: "
                                f"{_text(exc.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or \
            type(exc).__name__
        raise SmtpDeliveryError(f"cannot deliver through SMTP server {where}: {reason}"
                                ) from None
    sent = msg["To"]
    if refused:
        return f"e-mail sent to some recipients; refused: {', '.join(sorted(refused))}"
    return f"e-mail {msg['Message-ID']} sent to {sent} via {where}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# -- the actions ---------------------------------------------------------------------------

def _param(params: dict[str, Any], name: str, action: str, example: str) -> str:
    value = params.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{action} needs '{name}' (e.g. {example})")
    return value.strip()


def _function(run: Callable[[dict[str, Any]], str], destructive: bool) -> FunctionAction:
    from tsuba.soar.playbooks import FunctionAction  # noqa: PLC0415

    return FunctionAction(run, destructive=destructive)


def email_action(smtp: SmtpConfig | None, password: Callable[[], str | None]) -> FunctionAction:
    """Send ``text`` to ``to`` with ``subject``; without an SMTP configuration every call
    fails (and is escalated), so a playbook's e-mail is never dropped unnoticed."""

    def send(params: dict[str, Any]) -> str:
        if smtp is None:
            raise ConfigError("the email action needs an SMTP server: configure soar.smtp")
        return send_email(smtp, build_message(smtp, params), password())

    return _function(send, destructive=False)


def revoke_api_key_action(platform: Platform, actor: str) -> FunctionAction:
    """Revoke an API key; one already revoked counts as done."""
    service = _api_keys(platform, actor)

    def revoke(params: dict[str, Any]) -> str:
        prefix = _param(params, "prefix", "revoke_api_key", "'{alert.group.credential_id}'")
        try:
            service.revoke(prefix)
        except ConflictError:
            return f"API key {prefix} was already revoked"
        return f"API key {prefix} revoked"

    return _function(revoke, destructive=True)


def rotate_api_key_action(
    platform: Platform, actor: str, *, secret_dir: Path | None = None,
) -> FunctionAction:
    """Issue a successor of an API key (same principal, scopes, signing) and revoke the key.

    The result names the new prefix, never its secret.  The secret goes only to
    ``secret_dir`` when one is configured: a key-store-encrypted file ``<prefix>.tse`` that
    :func:`open_rotated_key` reads.  Without one the secret is discarded; whoever owns the
    principal then rotates the new key (``tsuba apikeys rotate``) to get a usable secret.
    """
    service = _api_keys(platform, actor)

    def rotate(params: dict[str, Any]) -> str:
        prefix = _param(params, "prefix", "rotate_api_key", "'{alert.group.credential_id}'")
        record = service.get(prefix)
        if record.replaced_by is not None:
            _revoke_quietly(service, prefix)
            return f"API key {prefix} was already rotated to {record.replaced_by}"
        if record.status == "revoked":
            raise ConflictError(f"API key {prefix} is revoked and has no successor: issue a "
                                "new key for its principal if one is needed")
        issued = service.rotate(prefix, grace=timedelta(0))
        _revoke_quietly(service, prefix)
        new = issued.record.prefix
        if secret_dir is None:
            kept = "its secret was not kept (no place configured for it)"
        else:
            kept = f"its secret is in {_keep_secret(platform.keys, secret_dir, new, issued)}"
        return (f"API key {prefix} revoked; replacement {new} issued for "
                f"'{issued.record.principal}'; {kept}")

    return _function(rotate, destructive=True)


def _keep_secret(keys: KeyManager, directory: Path, prefix: str, issued: Any) -> Path:
    from tsuba.core.keys.envelope import DEFAULT_KEK, encrypt  # noqa: PLC0415
    from tsuba.core.keys.files import atomic_write  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{prefix}.tse"
    secret = json.dumps({"key": issued.key, "signing_secret": issued.signing_secret}).encode()
    atomic_write(path, encrypt(keys, DEFAULT_KEK, secret, _ROTATED_AAD + prefix.encode()))
    return path


def open_rotated_key(keys: KeyManager, path: Path) -> dict[str, str | None]:
    """What a ``rotate_api_key`` step kept in ``path`` (``<prefix>.tse``): ``key``, and
    ``signing_secret`` for a request-signing key."""
    from tsuba.core.keys.envelope import decrypt  # noqa: PLC0415

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    data = json.loads(decrypt(keys, blob, _ROTATED_AAD + path.stem.encode()))
    return {"key": data["key"], "signing_secret": data.get("signing_secret")}


def _revoke_quietly(service: Any, prefix: str) -> None:
    with contextlib.suppress(ConflictError):  # already revoked: the state wanted
        service.revoke(prefix)


def _api_keys(platform: Platform, actor: str) -> Any:
    from tsuba.gateway.auth import ApiKeyService  # noqa: PLC0415

    return ApiKeyService(platform.engine, platform.keys,
                         pepper_key=platform.settings.gateway.auth.pepper_key,
                         emit=platform.record, actor=actor)


def block_principal_action(platform: Platform, actor: str) -> FunctionAction:
    """Disable a principal: its API keys and signed requests are refused (401) and every
    authorization for it is denied (403, which covers JWT callers too)."""
    from tsuba.core.identity import IdentityService  # noqa: PLC0415

    identity = IdentityService(platform.engine, emit=platform.record, actor=actor)

    def block(params: dict[str, Any]) -> str:
        name = _param(params, "principal", "block_principal", "'{alert.group.actor}'")
        if identity.get_principal(name).disabled:
            return f"principal '{name}' was already disabled"
        identity.disable_principal(name)
        return f"principal '{name}' disabled"

    return _function(block, destructive=True)


def block_ip_action(platform: Platform, actor: str) -> FunctionAction:
    """Put an address or network on the gateway's block list, for ``for`` (e.g. ``24h``)
    or until lifted."""
    from tsuba.core.identity import parse_duration  # noqa: PLC0415
    from tsuba.soar.blocklist import block_network  # noqa: PLC0415

    def block(params: dict[str, Any]) -> str:
        ip = _param(params, "ip", "block_ip", "'{alert.group.src_ip}'")
        duration = params.get("for")
        expires = None
        if duration is not None:
            expires = datetime.now(UTC) + parse_duration(str(duration))
        incident = str(params.get("incident") or "")
        incident_id = int(incident) if incident.isdigit() else None
        reason = str(params.get("reason") or (
            f"incident {incident_id}" if incident_id else "a playbook step"))
        entry, created = block_network(platform.engine, ip, reason=reason, actor=actor,
                                       expires_at=expires, incident_id=incident_id,
                                       emit=platform.record)
        until = f" until {entry.expires_at.isoformat()}" if entry.expires_at else ""
        return f"{entry.network} {'blocked' if created else 'was already blocked'}{until}"

    return _function(block, destructive=True)


def quarantine_model_action(platform: Platform, actor: str) -> FunctionAction:
    """Stop a registered model version from being served (``name:version``)."""
    from tsuba.models.registry import ModelRef, Registry  # noqa: PLC0415

    registry = Registry(platform.engine, actor=actor, emit=platform.record)

    def quarantine(params: dict[str, Any]) -> str:
        text = _param(params, "model", "quarantine_model", "'{alert.group.model}:1'")
        ref = str(ModelRef.parse(text, need_version=True))  # never "whichever is newest"
        reason = str(params.get("reason") or "quarantined by a playbook")
        if registry.get(ref).status == "quarantined":
            return f"model {ref} was already quarantined"
        info = registry.quarantine(ref, reason)
        return f"model {info.ref} quarantined"

    return _function(quarantine, destructive=True)


def rotate_key_action(platform: Platform, actor: str) -> FunctionAction:
    """Rotate a key in the key store.  With ``from_version`` the step is idempotent across
    crashes: a key already past that version counts as rotated."""
    from tsuba.core.keys.events import key_event  # noqa: PLC0415

    def rotate(params: dict[str, Any]) -> str:
        name = _param(params, "key", "rotate_key", "'data'")
        since = params.get("from_version")
        if since is not None:
            if not str(since).isdigit():
                raise InputError("rotate_key: 'from_version' must be a version number")
            current = platform.keys.info(name).current_version
            if current > int(since):
                return f"key '{name}' was already rotated (now version {current})"
        info = platform.keys.rotate(name)
        platform.record(key_event("rotate", info, actor=actor))
        return f"key '{name}' rotated to version {info.current_version}"

    return _function(rotate, destructive=True)


def contain_incident_action(incidents: IncidentService) -> FunctionAction:
    """Mark the incident contained (the harm is stopped), as a playbook's last step after
    it revoked, blocked or quarantined: the time to containment is then on record without
    waiting for a person.  Resolving stays a person's call.  Idempotent."""
    from tsuba.soar.incidents import State  # noqa: PLC0415
    from tsuba.soar.playbooks import FunctionAction  # noqa: PLC0415

    def contain(params: dict[str, Any]) -> str:
        incident = params.get("incident")
        if not isinstance(incident, int | str) or not str(incident).isdigit():
            raise InputError("contain_incident needs 'incident' (e.g. '{incident.id}')")
        current = incidents.get(int(incident))
        if current.state in (State.CONTAINED, State.RESOLVED, State.CLOSED):
            return f"incident {incident} was already {current.state.value}"
        incidents.contain(int(incident), str(params.get("note") or "contained by playbook"))
        return f"incident {incident} contained"

    return FunctionAction(contain)


def builtin_actions(
    platform: Platform,
    incidents: IncidentService,
    *,
    smtp: SmtpConfig | None = None,
    webhook_timeout: float = 10.0,
    rotated_key_dir: Path | None = None,
) -> dict[str, Action]:
    """Every built-in action, acting as ``incidents.actor`` and recording through
    ``platform.record``; ``rotated_key_dir`` is where ``rotate_api_key`` may keep the new
    secret (encrypted), nowhere when None."""
    from tsuba.soar.playbooks import note_action, webhook_action  # noqa: PLC0415

    actor = incidents.actor
    note = note_action(incidents)

    def password() -> str | None:
        if smtp is None:
            return None
        return smtp.password(keys=platform.keys, home=platform.settings.home)

    return {
        "incident_note": note,
        "note": note,
        "contain_incident": contain_incident_action(incidents),
        "webhook": webhook_action(timeout=webhook_timeout),
        "email": email_action(smtp, password),
        "revoke_api_key": revoke_api_key_action(platform, actor),
        "rotate_api_key": rotate_api_key_action(platform, actor, secret_dir=rotated_key_dir),
        "block_principal": block_principal_action(platform, actor),
        "block_ip": block_ip_action(platform, actor),
        "quarantine_model": quarantine_model_action(platform, actor),
        "rotate_key": rotate_key_action(platform, actor),
    }


__all__ = [
    "SmtpConfig",
    "SmtpDeliveryError",
    "build_message",
    "builtin_actions",
    "open_rotated_key",
    "send_email",
    "store_smtp_password",
]


def rotated_keys_dir(settings: Settings) -> Path | None:
    """Where ``rotate_api_key`` keeps replacement keys (``soar.rotated_keys_dir``), if set."""
    where = settings.soar.rotated_keys_dir
    if where is None:
        return None
    path = Path(where)
    return path if path.is_absolute() else settings.home / path
