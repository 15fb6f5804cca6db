"""A CLI with ``tsuba guard injection``, whether or not the guard group module exists yet."""

from __future__ import annotations

import pytest


@pytest.fixture
def guard_cli(cli, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The real entry point; the ``guard`` group is built here if no area module provides it."""
    import typer

    from tsuba.cli import main

    try:
        from tsuba.cli import guard as guard_module

        has_group = any(
            c.name == "injection" for c in guard_module.app.registered_commands
        )
    except ModuleNotFoundError:
        has_group = False
    if not has_group:
        from tsuba.cli.guard_injection import register

        root = typer.Typer(pretty_exceptions_enable=False)
        group = typer.Typer()
        register(group)
        root.add_typer(group, name="guard")
        monkeypatch.setattr(main, "app", root)
    return cli
