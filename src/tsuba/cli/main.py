"""Entry point: builds the command tree and turns errors into one clear line (exit 2)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from tsuba import __version__
from tsuba.cli.common import err
from tsuba.core.errors import TsubaError

app = typer.Typer(
    name="tsuba",
    help="tsuba: the guard between AI users and the models, data and agents they use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module under tsuba.cli, command-group name or None for top-level commands)
_MODULES: list[tuple[str, str | None]] = [
    ("init", None),
    ("up", None),
    ("config", "config"),
    ("db", "db"),
    ("principal", "principal"),
    ("role", "role"),
    ("authz", "authz"),
    ("audit", "audit"),
    ("keys", "keys"),
    ("model", "model"),
    ("apikeys", "apikeys"),
    ("guard", "guard"),
    ("detect", "detect"),
    ("soar", "soar"),
]

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tsuba {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", envvar="TSUBA_DEBUG", help="Show tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    _state["debug"] = debug


def _register() -> None:
    for module_name, group in _MODULES:
        try:
            module = importlib.import_module(f"tsuba.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tsuba.cli.{module_name}":
                continue  # area not built yet
            raise
        if group is None:
            module.register(app)
        else:
            app.add_typer(module.app, name=group)


_register()


def run() -> None:
    """Console-script entry: exit 0 ok, 1 findings, 2 usage or input error."""
    debug = "--debug" in sys.argv or os.environ.get("TSUBA_DEBUG") not in (None, "", "0")
    try:
        rc = app(standalone_mode=False)
    except TsubaError as exc:
        if debug:
            raise
        err.print(f"error: {exc.message}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)
    except Exception as exc:  # click usage errors and anything unexpected
        show = getattr(exc, "show", None)  # click/typer usage errors print themselves
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            sys.exit(2)
        if debug:
            raise
        err.print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            highlight=False,
            markup=False,
        )
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    run()
