"""``tsuba apikeys``: issue, list, rotate and revoke the gateway's API keys.

A key (and a signing secret, for keys that sign requests) is printed once, when issued;
tsuba keeps only a hash.  Every change is recorded in the audit log and on the bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, err, settings
from tsuba.cli.principal import local_actor
from tsuba.core.errors import InputError
from tsuba.core.identity import parse_duration, parse_instant
from tsuba.core.platform import Platform
from tsuba.gateway.auth import ApiKeyService, IssuedKey

app = typer.Typer(
    help="API keys for the gateway: create (shown once), list, rotate, revoke.",
    no_args_is_help=True,
)

PrefixArg = Annotated[str, typer.Argument(help="The key's prefix id (tsk_...), from 'list'.")]
_COLUMNS = ["prefix", "principal", "state", "scopes", "signing", "expires_at", "last_used_at"]


@contextmanager
def _service(home: Path | None) -> Iterator[ApiKeyService]:
    cfg = settings(home)
    with Platform.open(cfg) as platform:
        yield ApiKeyService(
            platform.engine,
            platform.keys,
            pepper_key=cfg.gateway.auth.pepper_key,
            emit=platform.record,
            actor=local_actor(),
        )


def _expiry(text: str) -> datetime | None:
    """``never``, a duration from now (``30d``) or an ISO-8601 instant with a timezone."""
    raw = text.strip()
    if raw.lower() == "never":
        return None
    if raw[:1].isdigit() and raw[-1:] in "wdhms" and "-" not in raw and ":" not in raw:
        return datetime.now(UTC) + parse_duration(raw)
    try:
        return parse_instant(raw)
    except InputError:
        raise InputError(
            f"invalid --expires {text!r}: use a lifetime like 30d or 12h, an ISO-8601 instant "
            "with a timezone like 2026-12-31T00:00Z, or 'never'"
        ) from None


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _row(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "scopes": ",".join(data["scopes"]) or "-"}


def _show_issued(issued: IssuedKey, fmt: Format, note: str) -> None:
    record = issued.record.to_dict(datetime.now(UTC))
    if fmt is Format.json:
        emit_json({**record, "key": issued.key, "signing_secret": issued.signing_secret})
        return  # JSON is read by programs: the note goes to people only
    emit(_row(record), fmt)
    typer.echo(f"\nkey: {issued.key}")
    if issued.signing_secret:
        typer.echo(f"signing secret: {issued.signing_secret}")
    err.print(note, highlight=False, markup=False)


@app.command("create")
def create(
    *,
    principal: Annotated[str, typer.Option("--principal", help="Who the key belongs to.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated scopes, e.g. chat,embeddings.")
    ] = "",
    expires: Annotated[
        str,
        typer.Option(
            "--expires", help="Lifetime (30d, 12h), an ISO-8601 instant, or 'never'."
        ),
    ] = "90d",
    signing: Annotated[
        bool,
        typer.Option(
            "--signing", help="Require HMAC-signed requests (prints a signing secret too)."
        ),
    ] = False,
    description: Annotated[
        str | None, typer.Option("--description", help="What the key is for.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Issue an API key; it is printed once and cannot be shown again."""
    expires_at = _expiry(expires)
    with _service(home) as service:
        issued = service.create(
            principal, _scopes(scopes), expires_at, signing=signing, description=description
        )
    _show_issued(issued, fmt, "store the key now: tsuba keeps only its hash")


@app.command("list")
def list_cmd(
    principal: Annotated[
        str | None, typer.Option("--principal", help="Only this principal's keys.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """List keys (never their secrets) with their state."""
    now = datetime.now(UTC)
    with _service(home) as service:
        rows = [r.to_dict(now) for r in service.list_keys(principal=principal)]
    if fmt is Format.json:
        emit(rows, fmt)
    else:
        emit([_row(r) for r in rows], fmt, columns=_COLUMNS)


@app.command("show")
def show(prefix: PrefixArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show one key's record."""
    with _service(home) as service:
        record = service.get(prefix).to_dict(datetime.now(UTC))
    emit(record if fmt is Format.json else _row(record), fmt)


@app.command("rotate")
def rotate(
    prefix: PrefixArg,
    grace: Annotated[
        str,
        typer.Option("--grace", help="How long the old key keeps working (e.g. 1h, 0s)."),
    ] = "1h",
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Issue a successor; the old key works until the grace period ends."""
    window = timedelta(0) if grace.strip() in ("0", "0s") else parse_duration(grace)
    with _service(home) as service:
        issued = service.rotate(prefix, grace=window)
    _show_issued(
        issued, fmt, f"store the new key now; {prefix} stops working after the grace period"
    )


@app.command("revoke")
def revoke(prefix: PrefixArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Refuse the key from now on, on every gateway worker."""
    with _service(home) as service:
        record = service.revoke(prefix)
    data = record.to_dict(datetime.now(UTC))
    emit(data if fmt is Format.json else _row(data), fmt)
