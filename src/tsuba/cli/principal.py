"""``tsuba principal``: the people, services and agents that act."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, out, settings
from tsuba.core.errors import InputError
from tsuba.core.identity import IdentityService, PrincipalKind
from tsuba.core.platform import Platform

app = typer.Typer(help="People, services and agents that act.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Principal name (lowercase, e.g. alice).")]


def local_actor() -> str:
    """Who runs the CLI, as recorded in events and as the default grantor."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


@contextmanager
def identity_service(home: Path | None, *, actor: str | None = None) -> Iterator[IdentityService]:
    # Every change is recorded in the audit log and published on the bus.
    with Platform.open(settings(home)) as platform, IdentityService(
        platform.engine, actor=actor or local_actor(), emit=platform.record
    ) as service:
        yield service


def _parse_labels(raw: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"label {item!r} must look like key=value")
        labels[key] = value
    return labels


def show_sections(
    main: dict[str, Any],
    sections: dict[str, list[dict[str, Any]]],
    fmt: Format,
    columns: dict[str, list[str]],
) -> None:
    """A record followed by its related lists: one JSON object, or key lines and tables."""
    if fmt is Format.json:
        emit_json({**main, **sections})
        return
    emit(main, fmt)
    for title, rows in sections.items():
        out.print(f"\n{title}:", highlight=False, markup=False)
        emit(rows, fmt, columns=columns.get(title))


@app.command("create")
def create(
    name: NameArg,
    *,
    kind: Annotated[PrincipalKind, typer.Option("--kind", help="What acts.", case_sensitive=False)],
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name shown to people.")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="key=value, repeatable.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Create a principal."""
    with identity_service(home) as service:
        info = service.create_principal(
            name, kind, display_name=display_name, labels=_parse_labels(label or [])
        )
    emit(info.to_dict(), fmt)


@app.command("list")
def list_cmd(
    kind: Annotated[
        PrincipalKind | None, typer.Option("--kind", help="Only this kind.", case_sensitive=False)
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """List principals."""
    with identity_service(home) as service:
        rows = [p.to_dict() for p in service.list_principals(kind=kind)]
    emit(rows, fmt, columns=["name", "kind", "display_name", "disabled", "created_at"])


@app.command("show")
def show(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show a principal and the roles bound to it."""
    with identity_service(home) as service:
        info = service.get_principal(name)
        bindings = [b.to_dict() for b in service.list_bindings(principal=name)]
    show_sections(
        info.to_dict(),
        {"bindings": bindings},
        fmt,
        {"bindings": ["role", "scope", "expires_at", "granted_by", "granted_at"]},
    )


@app.command("disable")
def disable(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Disable a principal: every check for it is denied until it is enabled."""
    with identity_service(home) as service:
        emit(service.disable_principal(name).to_dict(), fmt)


@app.command("enable")
def enable(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Enable a disabled principal."""
    with identity_service(home) as service:
        emit(service.enable_principal(name).to_dict(), fmt)


@app.command("delete")
def delete(name: NameArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Delete a principal and all its role bindings."""
    with identity_service(home) as service:
        emit(service.delete_principal(name).to_dict(), fmt)
