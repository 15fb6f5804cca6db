"""``tsuba db``: schema migrations."""

from __future__ import annotations

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, settings
from tsuba.core.storage import current_heads, open_engine, upgrade
from tsuba.core.storage.migrate import expected_heads, is_current

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Apply every pending migration."""
    engine = open_engine(settings(home).sqlalchemy_url)
    before = current_heads(engine)
    upgrade(engine)
    after = current_heads(engine)
    emit({"before": sorted(before), "after": sorted(after)}, fmt)


@app.command("status")
def status_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show the schema revision in the database and the one this tsuba needs."""
    engine = open_engine(settings(home).sqlalchemy_url)
    have, want = current_heads(engine), expected_heads()
    emit({"current": sorted(have), "expected": sorted(want), "up_to_date": is_current(engine)}, fmt)
