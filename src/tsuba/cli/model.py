"""``tsuba model``: scan, sign, verify and register model files."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(help="Model files: scan, sign, verify, register.", no_args_is_help=True)

# Each area module adds its commands to ``app`` through ``register(app)``.
for _name in ("model_scan", "model_sign", "model_registry"):
    try:
        importlib.import_module(f"tsuba.cli.{_name}").register(app)
    except ModuleNotFoundError as exc:
        if exc.name != f"tsuba.cli.{_name}":
            raise
