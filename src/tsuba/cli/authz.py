"""``tsuba authz``: may this principal do this action on this resource, and why (not)."""

from __future__ import annotations

from typing import Annotated

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit_json, out
from tsuba.cli.principal import identity_service
from tsuba.core.identity import parse_instant

app = typer.Typer(help="Authorization decisions and their explanation.", no_args_is_help=True)

PrincipalArg = Annotated[str, typer.Argument(help="Principal name.")]
ActionArg = Annotated[str, typer.Argument(help="Action, e.g. model:invoke.")]
ResourceArg = Annotated[str, typer.Argument(help="Resource, e.g. model/demo.")]
AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Decide as of this instant (ISO 8601 with zone); default now."),
]


@app.command("check")
def check(
    principal: PrincipalArg,
    action: ActionArg,
    resource: ResourceArg,
    *,
    at: AtOption = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Decide: exit 0 if allowed, 1 if denied."""
    when = parse_instant(at) if at is not None else None
    with identity_service(home) as service:
        decision = service.authorize(principal, action, resource, at=when)
    if fmt is Format.json:
        emit_json(
            {"principal": principal, "action": action, "resource": resource, **decision.to_dict()}
        )
    else:
        verdict = "allowed" if decision.allowed else "denied"
        out.print(f"{verdict}: {decision.reason}", highlight=False, markup=False)
    if not decision.allowed:
        # SystemExit, not typer.Exit: the entry point runs click outside standalone mode,
        # where an Exit's code would be returned and lost.
        raise SystemExit(1)


@app.command("explain")
def explain(
    principal: PrincipalArg,
    action: ActionArg,
    resource: ResourceArg,
    *,
    at: AtOption = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Why may (or may not) PRINCIPAL do ACTION on RESOURCE: every rule considered."""
    when = parse_instant(at) if at is not None else None
    with identity_service(home) as service:
        explanation = service.explain(principal, action, resource, at=when)
    if fmt is Format.json:
        emit_json(explanation.to_dict())
        return
    for line in explanation.lines():
        out.print(line, highlight=False, markup=False)
