"""What every CLI module shares: output format, settings loading, printing data."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tsuba.core.config import Settings, load_settings


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="TSUBA_HOME", help="Data directory (default ./.tsuba)."),
]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def settings(home: Path | None = None) -> Settings:
    return load_settings(home)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def emit(data: Any, fmt: Format, *, columns: list[str] | None = None, title: str = "") -> None:
    """Print data as JSON, or as a table (list of dicts) / key-value lines (dict) for people."""
    if fmt is Format.json:
        emit_json(data)
        return
    if isinstance(data, list):
        if not data:
            out.print("(none)")
            return
        cols = columns or list(data[0].keys())
        table = Table(title=title or None)
        for col in cols:
            table.add_column(col)
        for row in data:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
        out.print(table)
    elif isinstance(data, dict):
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            out.print(f"{key:<{width}}  {shown}", highlight=False, markup=False)
    else:
        out.print(str(data), highlight=False, markup=False)
