"""``tsuba guard injection``: score text for prompt injection and jailbreaks.

Exit 0 when every text scores below the threshold, 1 when one reaches it, 2 on bad input.
Input that is not UTF-8 is refused rather than repaired: bytes a guard cannot read are bytes
it cannot vouch for.
"""

# ruff: noqa: PLR0917  (typer commands take their options as parameters)
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from tsuba.cli.common import Format, FormatOption, emit, err
from tsuba.core.errors import InputError
from tsuba.guards.injection import SOURCES, Source, detect

_SourceOption = Annotated[
    str,
    typer.Option("--source", "-s", help="Where the text comes from: user, document or tool."),
]
_PROGRESS_BYTES = 4 << 20  # show progress on batches at least this big, when stderr is a tty


def _read(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    path = Path(file)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{file}: no such file; pass a path or - for standard input") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{file} is a directory; pass a file or - for standard input") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})") from exc


def _decode(data: bytes, name: str, errors: str = "strict") -> str:
    if errors not in ("strict", "replace"):
        raise InputError("--errors must be 'strict' or 'replace'")
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not valid UTF-8 (byte {exc.start}); convert it to UTF-8 first "
            "or pass --errors replace"
        ) from exc


def _source(value: str) -> Source:
    if value not in SOURCES:
        raise InputError(f"unknown --source {value!r}: use one of {', '.join(SOURCES)}")
    return value


def _record_text(
    line: str, number: int, name: str, field: str = "text"
) -> tuple[str, Source | None, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} line {number}: not JSON ({exc.msg})") from exc
    if isinstance(record, str):
        return record, None, None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        raise InputError(
            f'{name} line {number}: expected a JSON string or an object with a "{field}" string'
        )
    source = record.get("source")
    return record[field], _source(source) if source is not None else None, record.get("id")


def _injection(
    file: Annotated[str, typer.Argument(help="File to read, or - for standard input.")] = "-",
    source: _SourceOption = "user",
    threshold: Annotated[
        float, typer.Option("--threshold", "-t", help="Score at which text counts as injection.")
    ] = 0.5,
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl", help='One record a line: a JSON string or {"text", "source"?, "id"?}.'
        ),
    ] = False,
    field: Annotated[
        str, typer.Option("--field", help="With --jsonl: the object key that holds the text.")
    ] = "text",
    errors: Annotated[
        str, typer.Option("--errors", help="Invalid UTF-8: 'strict' (refuse) or 'replace'.")
    ] = "strict",
    fmt: FormatOption = Format.text,
) -> None:
    """Score text for prompt injection and jailbreak attempts."""
    default_source = _source(source)
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"--threshold {threshold} is outside (0, 1]")
    name = "standard input" if file == "-" else file
    data = _read(file)
    if not jsonl:
        verdict = detect(_decode(data, name, errors), default_source, threshold=threshold)
        emit(verdict.as_dict(), fmt)
        raise typer.Exit(1 if verdict.label == "injection" else 0)
    text = _decode(data, name, errors)
    lines = text.splitlines()
    flagged = 0
    show = len(data) >= _PROGRESS_BYTES and err.is_terminal
    with Progress(console=err, disable=not show, transient=True) as progress:
        task = progress.add_task("scoring", total=len(lines))
        for number, line in enumerate(lines, start=1):
            progress.advance(task)
            if not line.strip():
                continue
            body, rec_source, rec_id = _record_text(line, number, name, field)
            verdict = detect(body, rec_source or default_source, threshold=threshold)
            flagged += verdict.label == "injection"
            row: dict[str, object] = {"line": number, **verdict.as_dict()}
            if rec_id is not None:
                row["id"] = rec_id
            if fmt is Format.json:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                reasons = "; ".join(r for r in verdict.reasons if not r.startswith("classifier"))
                sys.stdout.write(
                    f"{number}\t{verdict.label}\t{verdict.score:.3f}\t{reasons}\n"
                )
    raise typer.Exit(1 if flagged else 0)


def register(app: typer.Typer) -> None:
    """Add ``injection`` to the ``tsuba guard`` group."""
    app.command("injection")(_injection)

