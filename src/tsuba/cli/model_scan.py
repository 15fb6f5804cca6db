"""``tsuba model scan``: is a model file safe to load?  Exit 0 clean, 1 unsafe, 2 unreadable."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tsuba.cli.common import HomeOption, emit_json, err, out, settings
from tsuba.core.errors import InputError, UsageError
from tsuba.models.scan import Report, Severity, scan_path, sign_report
from tsuba.models.scan.engine import iter_files

_PROGRESS_BYTES = 256 << 20  # show a bar when a scan covers more than this


class ScanFormat(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


class Threshold(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)


def scan(  # noqa: PLR0917 -- typer maps each parameter to an option
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to scan.")],
    fmt: Annotated[
        ScanFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
    ] = ScanFormat.text,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into subfolders of folders.")
    ] = False,
    fail_on: Annotated[
        Threshold, typer.Option("--fail-on", help="Lowest severity that makes the exit code 1.")
    ] = Threshold.medium,
    sign_with: Annotated[
        str | None,
        typer.Option("--sign-with", help="Key name: write a signed scan result (attestation)."),
    ] = None,
    subject_digest: Annotated[
        str | None,
        typer.Option("--subject-digest", help="Model signature digest the result is bound to."),
    ] = None,
    attestation: Annotated[
        Path | None, typer.Option("--attestation", help="Where to write the signed result.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Scan model files without loading them; findings at or above --fail-on exit 1."""
    if sign_with and not (subject_digest and attestation):
        raise UsageError("--sign-with needs --subject-digest and --attestation")
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise InputError(f"no such file or directory: {path}")
    threshold = Severity.parse(fail_on.value)
    report = _run(paths, recursive)
    if fmt is ScanFormat.json:
        emit_json(report.to_dict())
    elif fmt is ScanFormat.sarif:
        sys.stdout.write(json.dumps(report.to_sarif(), indent=2) + "\n")
    else:
        out.print(report.to_text(), highlight=False, markup=False, soft_wrap=True)
    if sign_with:
        from tsuba.core.keys import open_key_manager  # noqa: PLC0415 (only when signing)

        assert subject_digest is not None and attestation is not None
        envelope = sign_report(report, open_key_manager(settings(home)), sign_with,
                               subject_digest, subject_name=str(paths[0]), threshold=threshold)
        attestation.write_text(json.dumps(envelope, indent=2) + "\n")
    raise typer.Exit(report.exit_code(threshold))


def _run(paths: list[Path], recursive: bool) -> Report:
    files = [f for p in paths for f in iter_files(p, recursive=recursive)]
    total = sum(_size(f) for f in files)
    report = Report()
    if total < _PROGRESS_BYTES or not sys.stderr.isatty():
        for path in paths:
            report.merge(scan_path(path, recursive=recursive))
        return report
    from rich.progress import (  # noqa: PLC0415 (only for large interactive scans)
        BarColumn,
        DownloadColumn,
        Progress,
        TransferSpeedColumn,
    )

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), transient=True,
                  console=err) as bar:
        task = bar.add_task("scanning", total=total)
        for path in paths:
            report.merge(scan_path(path, recursive=recursive,
                                   progress=lambda n: bar.advance(task, n)))
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
