"""``tsuba guard``: scan text for PII and secrets, classify it, redact it.

Input is a file or ``-`` for standard input, read as UTF-8 (invalid bytes are an input
error unless ``--errors replace``).  ``--jsonl`` reads one record per line (a JSON string or
an object whose ``--field`` holds the text) and writes one result per line.  Exit codes: 0
nothing found, 1 findings (pii, secrets) or a level at ``--fail-at`` (classify), 2 bad input.
"""

# ruff: noqa: PLR0917  (typer commands take their options as parameters)
from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from tsuba.cli.common import Format, FormatOption, HomeOption, emit_json, err, out, settings
from tsuba.core.errors import InputError, UsageError
from tsuba.guards import classify as classification
from tsuba.guards import pii
from tsuba.guards import secrets as secret_scan
from tsuba.guards.anonymize import Encrypt, Hash, Mask, Operator, Redact, Replace, anonymize
from tsuba.guards.types import Finding

app = typer.Typer(help="Content guards: PII, secrets, classification, redaction.",
                  no_args_is_help=True)

CHUNK = 256 * 1024  # big texts are analysed in pieces cut at line breaks, with a progress bar
PROGRESS_MIN = 1024 * 1024

InputArg = Annotated[str, typer.Argument(help="File to read, or '-' for standard input.")]
LanguageOption = Annotated[
    str, typer.Option("--language", "-l", help="Language of the text: en, de, fr, es, ja, ...")
]
JsonlOption = Annotated[
    bool, typer.Option("--jsonl", help="One record per line in, one result per line out.")
]
FieldOption = Annotated[
    str, typer.Option("--field", help="With --jsonl: the object key that holds the text.")
]
ErrorsOption = Annotated[
    str, typer.Option("--errors", help="Invalid UTF-8: 'strict' (refuse) or 'replace'.")
]
MinScoreOption = Annotated[
    float, typer.Option("--min-score", min=0.0, max=1.0, help="Report findings at this score.")
]


def _read(source: str, errors: str) -> str:
    if errors not in ("strict", "replace"):
        raise UsageError("--errors must be 'strict' or 'replace'")
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{source}: is a directory, give a file") from None
        except OSError as exc:
            raise InputError(f"{source}: cannot be read ({exc.strerror})") from None
        name = source
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not valid UTF-8 (byte {exc.start}): convert it, or pass --errors replace"
        ) from None


def _records(text: str, field: str) -> Iterator[tuple[int, str, Any]]:
    """(line number, text, record) for each non-empty line of a JSON Lines input."""
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {lineno} is not JSON: {exc.msg} (column {exc.colno})") from None
        if isinstance(record, str):
            yield lineno, record, record
        elif isinstance(record, dict) and isinstance(record.get(field), str):
            yield lineno, record[field], record
        else:
            raise InputError(
                f"line {lineno}: expected a JSON string or an object with a string '{field}'"
            )


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) cut at line breaks near CHUNK characters, so findings keep their span."""
    pos = 0
    while pos < len(text):
        end = min(len(text), pos + CHUNK)
        if end < len(text):
            cut = text.rfind("\n", pos + CHUNK // 2, end)
            end = cut + 1 if cut != -1 else end
        yield pos, text[pos:end]
        pos = end


def _progress(total: int, label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        TaskProgressColumn(),
        console=err,
        transient=True,
        disable=total < PROGRESS_MIN or not err.is_terminal,
    )


def _scan_big(text: str, scan: Callable[[str], list[Finding]], label: str) -> list[Finding]:
    found: list[Finding] = []
    with _progress(len(text), label) as progress:
        task = progress.add_task(label, total=len(text))
        for offset, piece in _pieces(text):
            found.extend(
                Finding(f.start + offset, f.end + offset, f.entity_type, f.score, f.recognizer,
                        f.explanation)
                for f in scan(piece)
            )
            progress.advance(task, len(piece))
    return found


def _entities(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [v.strip().upper() for v in value.split(",") if v.strip()]
    known = set(pii.default_analyzer().supported_entities)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(
            f"unknown entity type(s) {', '.join(unknown)}: see 'tsuba guard entities'"
        )
    return names


def _finding_rows(text: str, findings: list[Finding], show: bool) -> list[dict[str, object]]:
    return [f.as_dict(text if show else None) for f in findings]


def _print_findings(text: str, findings: list[Finding], show: bool) -> None:
    if not findings:
        out.print("no findings", highlight=False)
        return
    for f in findings:
        value = text[f.start : f.end] if show else ""
        shown = f"  {value!r}" if show else ""
        out.print(
            f"{f.start}-{f.end}  {f.entity_type:<20} {f.score:.2f}  {f.recognizer}{shown}",
            highlight=False,
            markup=False,
        )


def _run_scan(
    source: str,
    *,
    fmt: Format,
    jsonl: bool,
    field: str,
    errors: str,
    scan: Callable[[str], list[Finding]],
    label: str,
    show: bool,
) -> None:
    text = _read(source, errors)
    any_found = False
    if jsonl:
        rows = list(_records(text, field))
        with _progress(len(rows) * 1000, label) as progress:
            task = progress.add_task(label, total=len(rows))
            for lineno, body, _ in rows:
                findings = scan(body)
                any_found = any_found or bool(findings)
                sys.stdout.write(json.dumps(
                    {"line": lineno, "findings": _finding_rows(body, findings, show)},
                    ensure_ascii=False) + "\n")
                progress.advance(task)
        raise typer.Exit(1 if any_found else 0)
    findings = _scan_big(text, scan, label)
    if fmt.value == "json":
        emit_json({"findings": _finding_rows(text, findings, show), "count": len(findings)})
    else:
        _print_findings(text, findings, show)
    raise typer.Exit(1 if findings else 0)


ShowOption = Annotated[
    bool, typer.Option("--show/--hide", help="Print the matched text (off: offsets only).")
]


@app.command("pii")
def pii_command(
    source: InputArg = "-",
    language: LanguageOption = "en",
    entities: Annotated[
        str | None, typer.Option("--entities", "-e", help="Comma-separated entity types.")
    ] = None,
    min_score: MinScoreOption = pii.DEFAULT_MIN_SCORE,
    jsonl: JsonlOption = False,
    field: FieldOption = "text",
    errors: ErrorsOption = "strict",
    show: ShowOption = False,
    fmt: FormatOption = Format.text,
) -> None:
    """Find personal data (exit 1 when any is found)."""
    wanted = _entities(entities)

    def scan(text: str) -> list[Finding]:
        return pii.analyze(text, wanted, language, min_score=min_score)

    _run_scan(source, fmt=fmt, jsonl=jsonl, field=field, errors=errors, scan=scan, label="pii",
              show=show)


@app.command("secrets")
def secrets_command(
    source: InputArg = "-",
    min_score: MinScoreOption = 0.5,
    jsonl: JsonlOption = False,
    field: FieldOption = "text",
    errors: ErrorsOption = "strict",
    show: ShowOption = False,
    fmt: FormatOption = Format.text,
) -> None:
    """Find keys, tokens, private keys and passwords (exit 1 when any is found)."""

    def scan(text: str) -> list[Finding]:
        return secret_scan.scan(text, min_score=min_score)

    _run_scan(source, fmt=fmt, jsonl=jsonl, field=field, errors=errors, scan=scan,
              label="secrets", show=show)


@app.command("classify")
def classify_command(
    source: InputArg = "-",
    language: LanguageOption = "en",
    fail_at: Annotated[
        str | None,
        typer.Option("--fail-at", help="Exit 1 at this level or above (e.g. Confidential)."),
    ] = None,
    jsonl: JsonlOption = False,
    field: FieldOption = "text",
    errors: ErrorsOption = "strict",
    fmt: FormatOption = Format.text,
) -> None:
    """Classify as Public, Internal, Confidential or Restricted, with the reasons."""
    threshold = classification.Level.parse(fail_at) if fail_at else None
    text = _read(source, errors)
    worst = classification.Level.PUBLIC
    if jsonl:
        for lineno, _, record in _records(text, field):
            result = classification.classify(record, language=language)
            worst = max(worst, result.level)
            sys.stdout.write(json.dumps({"line": lineno, **result.as_dict()},
                                        ensure_ascii=False) + "\n")
    else:
        result = classification.classify(text, language=language)
        worst = result.level
        if fmt.value == "json":
            emit_json(result.as_dict())
        else:
            out.print(result.level.label, highlight=False)
            for reason in result.reasons:
                out.print(f"  {reason}", highlight=False, markup=False)
    raise typer.Exit(1 if threshold is not None and worst >= threshold else 0)


class OperatorName(StrEnum):
    REPLACE = "replace"
    REDACT = "redact"
    MASK = "mask"
    HASH = "hash"
    ENCRYPT = "encrypt"


def _operator(name: OperatorName, keep_last: int, home: Path | None) -> Operator:
    if name is OperatorName.REPLACE:
        return Replace()
    if name is OperatorName.REDACT:
        return Redact("[REDACTED]")
    if name is OperatorName.MASK:
        return Mask(keep_last=keep_last)
    from tsuba.core.keys import open_key_manager  # noqa: PLC0415 - only keyed operators need it

    keys = open_key_manager(settings(home))
    return Hash(keys) if name is OperatorName.HASH else Encrypt(keys)


@app.command("redact")
def redact_command(
    source: InputArg = "-",
    language: LanguageOption = "en",
    operator: Annotated[
        OperatorName, typer.Option("--operator", "-o", help="How to replace what is found.")
    ] = OperatorName.REPLACE,
    keep_last: Annotated[int, typer.Option("--keep-last", min=0, help="mask: keep N.")] = 4,
    include_secrets: Annotated[
        bool, typer.Option("--secrets/--no-secrets", help="Redact secrets too.")
    ] = True,
    min_score: MinScoreOption = pii.DEFAULT_MIN_SCORE,
    jsonl: JsonlOption = False,
    field: FieldOption = "text",
    errors: ErrorsOption = "strict",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Print the text with PII (and secrets) replaced; hash and encrypt use the key store."""
    op = _operator(operator, keep_last, home)

    def scan(text: str) -> list[Finding]:
        found = pii.analyze(text, None, language, min_score=min_score)
        if include_secrets:
            found += secret_scan.scan(text, min_score=min_score)
        return found

    text = _read(source, errors)
    if jsonl:
        for _, body, record in _records(text, field):
            result = anonymize(body, scan(body), op)
            redacted = {**record, field: result.text} if isinstance(record, dict) else result.text
            sys.stdout.write(json.dumps(redacted, ensure_ascii=False) + "\n")
        return
    findings = _scan_big(text, scan, "redact")
    result = anonymize(text, findings, op)
    if fmt.value == "json":
        emit_json({
            "text": result.text,
            "replacements": [
                {"start": r.start, "end": r.end, "entity_type": r.entity_type,
                 "operator": r.operator}
                for r in result.items
            ],
        })
    else:
        sys.stdout.write(result.text)
        if not result.text.endswith("\n"):
            sys.stdout.write("\n")


@app.command("entities")
def entities_command(fmt: FormatOption = Format.text) -> None:
    """List the entity types the PII analyzer reports."""
    names = pii.default_analyzer().supported_entities
    if fmt.value == "json":
        emit_json(names)
    else:
        for name in names:
            out.print(name, highlight=False)


# Other guard modules add their commands through ``register(app)``.
for _name in ("guard_injection",):
    try:
        importlib.import_module(f"tsuba.cli.{_name}").register(app)
    except ModuleNotFoundError as exc:
        if exc.name != f"tsuba.cli.{_name}":
            raise
