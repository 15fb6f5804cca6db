"""``tsuba model register|list|show|lineage|quarantine|release|retire|bom``: the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, out, settings
from tsuba.cli.model_sign import ensure_signing_key
from tsuba.cli.principal import local_actor
from tsuba.core.platform import Platform
from tsuba.models.registry import (
    Registry,
    Status,
    VersionInfo,
    export_bom,
    register_model,
)
from tsuba.models.sign import (
    DEFAULT_SIGNING_KEY,
    KeyStoreSigner,
    key_store_keys,
    public_key_files,
)

RefArg = Annotated[str, typer.Argument(help="NAME:VERSION (NAME alone: its newest version).")]
ExactRefArg = Annotated[str, typer.Argument(help="NAME:VERSION.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (kept and recorded).")]
_COLUMNS = ["name", "version", "status", "files", "scan", "created_by"]


def register(app: typer.Typer) -> None:
    app.command("register")(register_cmd)
    app.command("list")(list_cmd)
    app.command("show")(show)
    app.command("lineage")(lineage)
    app.command("quarantine")(quarantine)
    app.command("release")(release)
    app.command("retire")(retire)
    app.command("bom")(bom)


@contextmanager
def _registry(home: Path | None) -> Iterator[tuple[Registry, Platform]]:
    with Platform.open(settings(home)) as platform:
        yield Registry(platform.engine, actor=local_actor(), emit=platform.record), platform


def _row(info: VersionInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "status": info.status,
        "files": info.file_count,
        "bytes": info.total_bytes,
        "scan": info.scan.get("status"),
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "created_by": info.created_by,
    }


def _show(info: VersionInfo, fmt: Format) -> None:
    data = info.to_dict()
    if fmt is Format.text:
        data["datasets"] = [d["digest"] if not d["name"] else f"{d['name']}={d['digest']}"
                            for d in data["datasets"]]
    emit(data, fmt)


def register_cmd(  # noqa: PLR0917 -- typer maps each parameter to an option
    name: Annotated[str, typer.Argument(help="Model name (e.g. org/model).")],
    version: Annotated[str, typer.Argument(help="Version (e.g. 1.0.0).")],
    path: Annotated[Path, typer.Argument(help="Model folder or file.")],
    source: Annotated[
        str | None, typer.Option("--source", help="Where it came from (URL, repository).")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Training dataset as [NAME=]sha256:HEX; repeatable."),
    ] = None,
    parent: Annotated[
        list[str] | None,
        typer.Option("--parent", help="Model it derives from, NAME:VERSION; repeatable."),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Hyperparameter key=value; repeatable.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help=f"Key store key to sign with (default {DEFAULT_SIGNING_KEY})."),
    ] = None,
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="Signature file (default PATH/model.sig); with "
                     "--public-key, an existing signature to verify instead of signing."),
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option("--public-key", help="Register a model signed elsewhere: trust this key "
                     "(PEM) and verify its signature instead of signing."),
    ] = None,
    hash_name: Annotated[str, typer.Option("--hash", help="sha256, blake2 or blake3.")] = "sha256",
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", min=0, help="Shard bytes; 0: whole files.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Scan, sign (or verify) and record a model version with its provenance."""
    with _registry(home) as (registry, platform):
        options: dict[str, Any] = {
            "signature": signature, "source": source, "datasets": dataset or [],
            "parents": parent or [], "params": param or [],
        }
        if public_key:
            trusted = public_key_files(public_key)
            if key is not None:
                trusted += key_store_keys(platform.keys, key)
            result = register_model(registry, name, version, path, trusted=trusted, **options)
        else:
            signing_key = key or DEFAULT_SIGNING_KEY
            ensure_signing_key(platform, signing_key)
            result = register_model(
                registry, name, version, path, signer=KeyStoreSigner(platform.keys, signing_key),
                algorithm=hash_name, shard_size="auto" if shard_size is None else shard_size,
                **options,
            )
    if fmt is Format.json:
        emit_json(result.to_dict())
        return
    info = result.info
    out.print(f"registered {info.ref} ({info.file_count} files, scan {info.scan.get('status')}, "
              f"signed by {info.signed_by})", highlight=False, markup=False)


def list_cmd(
    name: Annotated[str | None, typer.Option("--name", help="Only versions of this model.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, quarantined or retired.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """List registered model versions."""
    with _registry(home) as (registry, _):
        chosen: Status | None = None
        if status is not None:
            if status not in ("active", "quarantined", "retired"):
                raise typer.BadParameter("--status must be active, quarantined or retired")
            chosen = status  # type: ignore[assignment]
        infos = registry.list_versions(name=name, status=chosen)
    if fmt is Format.json:
        emit([i.to_dict() for i in infos], fmt)
    else:
        emit([_row(i) for i in infos], fmt, columns=_COLUMNS)


def show(ref: RefArg, home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Show one version: provenance, signature, scan, status."""
    with _registry(home) as (registry, _):
        _show(registry.get(ref), fmt)


def lineage(
    ref: Annotated[
        str | None, typer.Argument(help="NAME:VERSION whose ancestors and descendants to show.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Instead: everything derived from this "
                                 "dataset digest.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """What a version derives from and what derives from it, or what used a dataset."""
    if (ref is None) == (dataset is None):
        raise typer.BadParameter("name a model (NAME:VERSION) or a --dataset digest")
    with _registry(home) as (registry, _):
        result = (registry.lineage(ref) if ref is not None
                  else registry.derived_from_dataset(dataset or ""))
    if fmt is Format.json:
        emit_json(result.to_dict())
        return
    out.print(f"lineage of {result.subject}", highlight=False, markup=False)
    for title, entries in (("ancestors", result.ancestors), ("descendants", result.descendants)):
        if entries:
            out.print(f"{title}:", highlight=False, markup=False)
            for e in entries:
                out.print(f"  {'  ' * max(e.depth - 1, 0)}{e.ref} ({e.status}, depth {e.depth})",
                          highlight=False, markup=False)
    if result.datasets:
        out.print("datasets:", highlight=False, markup=False)
        for d in result.datasets:
            out.print(f"  {d.digest}{f' ({d.name})' if d.name else ''}",
                      highlight=False, markup=False)


def _status(home: Path | None, ref: str, status: Status, reason: str | None, fmt: Format) -> None:
    with _registry(home) as (registry, _):
        _show(registry.set_status(ref, status, reason), fmt)


def quarantine(ref: ExactRefArg, reason: ReasonOption = None, home: HomeOption = None,
               fmt: FormatOption = Format.text) -> None:
    """Stop a version from being served, at once (recorded as a high-severity event)."""
    _status(home, ref, "quarantined", reason, fmt)


def release(ref: ExactRefArg, reason: ReasonOption = None, home: HomeOption = None,
            fmt: FormatOption = Format.text) -> None:
    """Return a quarantined version to active."""
    _status(home, ref, "active", reason, fmt)


def retire(ref: ExactRefArg, reason: ReasonOption = None, home: HomeOption = None,
           fmt: FormatOption = Format.text) -> None:
    """Retire a version: kept on record, no longer served."""
    _status(home, ref, "retired", reason, fmt)


def bom(
    ref: RefArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default stdout).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Export the version's AI bill of materials (CycloneDX 1.6 ML-BOM, validated)."""
    with _registry(home) as (registry, _):
        doc = export_bom(registry, ref)
    if output is None:
        emit_json(doc)
        return
    import json  # noqa: PLC0415

    output.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(f"wrote {output}", highlight=False, markup=False)


__all__ = ["register"]
