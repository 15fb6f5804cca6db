"""``tsuba keys``: list, create, rotate, retire and inspect keys in the configured backend."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tsuba.cli import apikeys
from tsuba.cli.common import Format, FormatOption, HomeOption, emit, settings
from tsuba.cli.principal import local_actor
from tsuba.core.errors import UsageError
from tsuba.core.home import require_home
from tsuba.core.keys import KeyInfo, KeyKind, KeyManager, open_key_manager
from tsuba.core.keys.events import KeyActivity, key_event
from tsuba.core.platform import Platform

app = typer.Typer(help="Keys: create, rotate, retire, export public keys.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Key name (e.g. data, audit-signing).")]
_COLUMNS = ["name", "kind", "current_version", "versions", "retired", "backend"]


def _manager(home: Path | None) -> KeyManager:
    cfg = settings(home)
    if cfg.keys.backend == "local":
        require_home(cfg)
    return open_key_manager(cfg)


def _change(
    home: Path | None,
    activity: KeyActivity,
    apply: Callable[[KeyManager], KeyInfo],
    version: int | None = None,
) -> KeyInfo:
    """Apply a key change and record it (audit log, then bus).  Storage and audit log are
    opened first, so a change is not made where it could not be recorded."""
    with Platform.open(settings(home)) as platform:
        info = apply(platform.keys)
        platform.record(key_event(activity, info, actor=local_actor(), version=version))
    return info


def _row(info: KeyInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind.value,
        "current_version": info.current_version,
        "versions": list(info.versions),
        "retired": list(info.retired),
        "created_at": info.created_at.isoformat() if info.created_at else None,
        "backend": info.backend,
        "labels": dict(info.labels),
    }


def _text_row(info: KeyInfo) -> dict[str, Any]:
    row = _row(info)
    row["versions"] = ",".join(str(v) for v in info.versions)
    row["retired"] = ",".join(str(v) for v in info.retired) or "-"
    return row


def _show(info: KeyInfo, fmt: Format) -> None:
    emit(_row(info) if fmt is Format.json else _text_row(info), fmt)


@app.command("list")
def list_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """List every key with its versions."""
    infos = _manager(home).list_keys()
    if fmt is Format.json:
        emit([_row(i) for i in infos], fmt)
    else:
        emit([_text_row(i) for i in infos], fmt, columns=_COLUMNS)


@app.command("create")
def create(  # noqa: PLR0917 -- typer maps each parameter to an option
    name: Annotated[
        str | None, typer.Argument(help="Key-store key name (e.g. data, audit-signing).")
    ] = None,
    kind: Annotated[
        KeyKind | None,
        typer.Option("--kind", help="What the key-store key is for.", case_sensitive=False),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option("--principal", help="Issue an API key for this principal instead."),
    ] = None,
    scopes: Annotated[str, typer.Option("--scopes", help="API key scopes, comma-separated.")] = "",
    expires: Annotated[
        str, typer.Option("--expires", help="API key lifetime (30d), ISO instant, or 'never'.")
    ] = "90d",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Create a key-store key (NAME --kind), or an API key (--principal P; see 'tsuba apikeys')."""
    if principal is not None:
        if name is not None or kind is not None:
            raise UsageError(
                "give either NAME --kind (a key-store key) or --principal (an API key)"
            )
        apikeys.create(principal=principal, scopes=scopes, expires=expires, home=home, fmt=fmt)
        return
    if name is None or kind is None:
        raise UsageError(
            "keys create needs NAME --kind KIND (a key-store key) or --principal P (an API key)"
        )
    key_name, key_kind = name, kind
    _show(_change(home, "create", lambda km: km.create(key_name, key_kind)), fmt)


@app.command("info")
def info(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show one key: kind, versions, retired versions."""
    _show(_manager(home).info(name), fmt)


@app.command("rotate")
def rotate(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Add a new version and make it current; older versions keep decrypting and verifying."""
    _show(_change(home, "rotate", lambda km: km.rotate(name)), fmt)


@app.command("retire")
def retire(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Version to retire (not the current one).", min=1)],
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Retire a version for good: what it wrapped can no longer be decrypted."""
    _show(_change(home, "retire", lambda km: km.retire(name, version), version), fmt)


@app.command("public")
def public(
    name: NameArg,
    version: Annotated[
        int | None, typer.Option("--version", help="Version (default: current).", min=1)
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Print a signing key's public key as PEM (SubjectPublicKeyInfo)."""
    km = _manager(home)
    pem = km.public_key_pem(name, version)
    if fmt is Format.json:
        number = version if version is not None else km.info(name).current_version
        emit({"name": name, "version": number, "public_key_pem": pem.decode("ascii")}, fmt)
        return
    sys.stdout.write(pem.decode("ascii"))
