"""``tsuba init``: create the data directory, its keys and its database."""

from __future__ import annotations

from typing import Annotated

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit_json, out
from tsuba.cli.principal import local_actor
from tsuba.core.config import home_from_env, load_settings
from tsuba.core.home import InitResult, init_home
from tsuba.core.keys.events import key_event
from tsuba.core.platform import Platform


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def record_created_keys(result: InitResult) -> None:
    """Report keys that initialisation made like any other key change: audit, then bus."""
    if not result.keys_created:
        return
    with Platform.open(load_settings(result.home)) as platform:
        for name in result.keys_created:
            info = platform.keys.info(name)
            platform.record(key_event("create", info, actor=local_actor()))


def init(
    home: HomeOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Complete an existing data directory: re-create only missing pieces and "
            "re-run migrations. Existing master key and keyring are always kept.",
        ),
    ] = False,
    fmt: FormatOption = Format.text,
) -> None:
    """Create the data directory (0700) with tsuba.toml, master key, keyring and database."""
    target = home if home is not None else home_from_env()
    result = init_home(target, force=force)
    record_created_keys(result)
    if fmt is Format.json:
        emit_json(result.to_dict())
        return
    for path in result.created:
        out.print(f"created  {path}", highlight=False, markup=False)
    for path in result.kept:
        out.print(f"kept     {path}", highlight=False, markup=False)
    for name in result.keys_created:
        out.print(f"key      {name} created", highlight=False, markup=False)
    for note in result.notes:
        out.print(f"note     {note}", highlight=False, markup=False)
    out.print(
        f"schema   {', '.join(result.schema) or '(none)'} on {result.database}",
        highlight=False,
        markup=False,
    )
    out.print(f"tsuba data directory ready at {result.home}", highlight=False, markup=False)
