"""``tsuba role``: roles, their permissions, and who they are bound to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit
from tsuba.cli.principal import identity_service, show_sections
from tsuba.core.errors import UsageError
from tsuba.core.identity import Effect, parse_duration, parse_instant

app = typer.Typer(help="Roles, permissions and role bindings.", no_args_is_help=True)

RoleArg = Annotated[str, typer.Argument(help="Role name (lowercase, e.g. reader).")]
PrincipalArg = Annotated[str, typer.Argument(help="Principal name.")]
ActionArg = Annotated[str, typer.Argument(help="Action: 'model:invoke', 'model:*' or '*'.")]
ResourceArg = Annotated[
    str,
    typer.Argument(help="Resource pattern: 'model/demo'; '*' is one segment, '**' any number."),
]
ScopeOption = Annotated[
    str | None,
    typer.Option("--scope", help="Limit the binding to resources matching this pattern."),
]

_PERMISSION_COLUMNS = ["effect", "action", "resource", "created_at"]
_BINDING_COLUMNS = ["principal", "scope", "expires_at", "granted_by", "granted_at"]


@app.command("create")
def create(
    name: RoleArg,
    description: Annotated[str, typer.Option("--description", help="What the role is for.")] = "",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Create a role (with no permissions yet)."""
    with identity_service(home) as service:
        info = service.create_role(name, description=description)
    emit(info.to_dict(), fmt)


@app.command("delete")
def delete(
    name: RoleArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even while bound (unbinds everyone).")
    ] = False,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Delete a role and its permissions."""
    with identity_service(home) as service:
        info = service.delete_role(name, force=force)
    emit(info.to_dict(), fmt)


@app.command("list")
def list_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """List roles."""
    with identity_service(home) as service:
        roles = service.list_roles()
    if fmt is Format.json:
        emit([r.to_dict() for r in roles], fmt)
        return
    rows = [
        {"name": r.name, "permissions": len(r.permissions), "description": r.description}
        for r in roles
    ]
    emit(rows, fmt)


@app.command("show")
def show(name: RoleArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show a role, its permissions and its bindings."""
    with identity_service(home) as service:
        info = service.get_role(name)
        bindings = [b.to_dict() for b in service.list_bindings(role=name)]
    data = info.to_dict()
    permissions = data.pop("permissions")
    show_sections(
        data,
        {"permissions": permissions, "bindings": bindings},
        fmt,
        {"permissions": _PERMISSION_COLUMNS, "bindings": _BINDING_COLUMNS},
    )


@app.command("grant")
def grant(
    role: RoleArg,
    action: ActionArg,
    resource: ResourceArg,
    *,
    deny: Annotated[
        bool, typer.Option("--deny", help="Forbid instead of allow (deny wins).")
    ] = False,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Add a permission (ACTION on RESOURCE) to a role."""
    with identity_service(home) as service:
        info = service.add_permission(
            role, action, resource, effect=Effect.DENY if deny else Effect.ALLOW
        )
    emit(info.to_dict(), fmt)


@app.command("revoke")
def revoke(
    role: RoleArg,
    action: ActionArg,
    resource: ResourceArg,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Remove a permission (allow or deny) from a role."""
    with identity_service(home) as service:
        info = service.remove_permission(role, action, resource)
    emit(info.to_dict(), fmt)


@app.command("bind")
def bind(
    role: RoleArg,
    principal: PrincipalArg,
    *,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Instant it ends, ISO 8601 with zone: 2026-12-31T00:00Z."),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--for", help="How long it lasts from now: 7d, 12h, 1w2d.")
    ] = None,
    scope: ScopeOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Who grants it (recorded).")] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Bind a role to a principal, optionally until an expiry and within a scope."""
    if expires is not None and duration is not None:
        raise UsageError("give --expires or --for, not both")
    expires_at = None
    if expires is not None:
        expires_at = parse_instant(expires)
    elif duration is not None:
        expires_at = datetime.now(UTC) + parse_duration(duration)
    with identity_service(home) as service:
        info = service.bind(role, principal, expires_at=expires_at, scope=scope, granted_by=by)
    emit(info.to_dict(), fmt)


@app.command("unbind")
def unbind(
    role: RoleArg,
    principal: PrincipalArg,
    scope: ScopeOption = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Remove a role binding from a principal."""
    with identity_service(home) as service:
        info = service.unbind(role, principal, scope=scope)
    emit(info.to_dict(), fmt)
