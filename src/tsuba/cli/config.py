"""``tsuba config``: show the effective settings with secrets hidden."""

from __future__ import annotations

import tomli_w
import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit_json, out, settings

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Print the effective settings (file + environment + defaults), secrets hidden."""
    data = settings(home).redacted()
    if fmt is Format.json:
        emit_json(data)
        return
    clean = _drop_none(data)
    out.print(tomli_w.dumps(clean), end="", highlight=False, markup=False)


def _drop_none(data: dict[str, object]) -> dict[str, object]:
    return {
        k: _drop_none(v) if isinstance(v, dict) else v
        for k, v in data.items()
        if v is not None
    }
