"""``tsuba model sign`` and ``tsuba model verify``: OpenSSF model signatures (key-based)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, err, out, settings
from tsuba.cli.principal import local_actor
from tsuba.core.errors import KeyStoreError
from tsuba.core.home import require_home
from tsuba.core.keys import KeyKind, KeyManager, open_key_manager
from tsuba.core.keys.events import key_event
from tsuba.core.platform import Platform
from tsuba.models.sign import (
    DEFAULT_SIGNING_KEY,
    KeyStoreSigner,
    ModelIntegrityError,
    SignResult,
    TrustedKey,
    VerifyReport,
    key_store_keys,
    public_key_files,
    sign_path,
    verify_path,
)
from tsuba.models.sign.events import signed_event
from tsuba.models.sign.pkcs11_uri import parse_pkcs11_uri

PathArg = Annotated[
    Path, typer.Argument(help="Model folder or file.", exists=False, show_default=False)
]
HashOption = Annotated[
    str,
    typer.Option("--hash", help="Digest: sha256, blake2 (BLAKE2b) or blake3.", show_default=True),
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Hashing threads (default: one per core).")
]
_PROGRESS_MIN = 256 << 20  # show a progress bar for models larger than this, on a terminal


def register(app: typer.Typer) -> None:
    app.command("sign")(sign)
    app.command("verify")(verify)


def ensure_signing_key(platform: Platform, name: str) -> None:
    """Create the default signing key on first use, and record that in the audit log."""
    existing = {info.name for info in platform.keys.list_keys()}
    if name in existing:
        return
    if name != DEFAULT_SIGNING_KEY:
        raise KeyStoreError(
            f"no key named '{name}': create it with 'tsuba keys create {name} --kind ecdsa-p256'"
        )
    info = platform.keys.create(name, KeyKind.ECDSA_P256, exist_ok=True)
    platform.record(key_event("create", info, actor=local_actor()))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int], None] | None]:
    if not enabled or not err.is_terminal:
        yield None
        return
    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), console=err, transient=True,
    )
    with bar:
        task = bar.add_task("hashing", total=None)
        yield lambda n: bar.advance(task, n)


def _shard(value: int | None) -> Any:
    return "auto" if value is None else value


def sign(  # noqa: PLR0917 -- typer maps each parameter to an option
    path: PathArg,
    key: Annotated[
        str | None,
        typer.Option("--key", help=f"Key store key (ecdsa-p256; default {DEFAULT_SIGNING_KEY}, "
                     "created on first use)."),
    ] = None,
    pkcs11: Annotated[
        str | None,
        typer.Option("--pkcs11", help="PKCS#11 key as a URI: pkcs11:token=LABEL;object=KEY"
                     "?module-path=LIB&pin-source=FILE (module and PIN may come from settings)."),
    ] = None,
    hash_name: HashOption = "sha256",
    shard_size: Annotated[
        int | None,
        typer.Option("--shard-size", min=0, help="Shard bytes; 0 hashes whole files "
                     "(default: 1 GB shards for sha256/blake2, whole files for blake3)."),
    ] = None,
    signature: Annotated[
        Path | None, typer.Option("--signature", help="Where to write (default PATH/model.sig).")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option("--ignore", help="Path inside the model to leave out.")
    ] = None,
    include_git: Annotated[
        bool, typer.Option("--include-git", help="Sign .git, .gitattributes, .github too.")
    ] = False,
    allow_symlinks: Annotated[
        bool, typer.Option("--allow-symlinks", help="Follow symbolic links instead of refusing.")
    ] = False,
    workers: WorkersOption = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Hash a model folder or file and sign its manifest (OpenSSF model signing format)."""
    if key is not None and pkcs11 is not None:
        raise typer.BadParameter("use --key or --pkcs11, not both")
    options: dict[str, Any] = {
        "signature": signature,
        "algorithm": hash_name,
        "shard_size": _shard(shard_size),
        "allow_symlinks": allow_symlinks,
        "ignore_paths": ignore or (),
        "ignore_git_paths": not include_git,
        "workers": workers,
    }
    big = _size_hint(path) >= _PROGRESS_MIN
    if pkcs11 is not None:
        from tsuba.core.keys.pkcs11 import Pkcs11KeyManager  # noqa: PLC0415 (optional extra)

        uri = parse_pkcs11_uri(pkcs11)
        cfg = settings(home).keys
        module = uri.module or cfg.pkcs11_module
        pin = uri.pin or (cfg.pkcs11_pin.get_secret_value() if cfg.pkcs11_pin else None)
        if not module or not pin:
            raise KeyStoreError(
                "the PKCS#11 URI needs module-path and pin-source (or set keys.pkcs11_module "
                "and TSUBA_KEYS__PKCS11_PIN)"
            )
        manager = Pkcs11KeyManager(module, uri.token, pin)
        with _progress(big) as progress:
            result = sign_path(path, KeyStoreSigner(manager, uri.key), progress=progress,
                               **options)
    else:
        name = key or DEFAULT_SIGNING_KEY
        with Platform.open(settings(home)) as platform:
            ensure_signing_key(platform, name)
            with _progress(big) as progress:
                result = sign_path(path, KeyStoreSigner(platform.keys, name),
                                   progress=progress, **options)
            platform.record(signed_event(result, actor=local_actor()))
    _show_signed(result, fmt)


def _size_hint(path: Path) -> int:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _show_signed(result: SignResult, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(result.to_dict())
        return
    ser = result.serialization
    shards = f", shards of {ser['shard_size']} bytes" if "shard_size" in ser else ""
    out.print(
        f"signed {result.path}: {result.files} files, {result.total_bytes} bytes, "
        f"{ser['hash_type']}{shards}",
        highlight=False, markup=False,
    )
    emit({"signature": result.signature, "root_digest": result.root_digest,
          "key": result.key, "key_hint": result.key_hint}, fmt)


def _trusted(home: Path | None, public_keys: list[Path], key: str | None) -> list[TrustedKey]:
    keys = public_key_files(public_keys)
    if keys and key is None:
        return keys
    cfg = settings(home)
    if cfg.keys.backend == "local":
        require_home(cfg)
    manager: KeyManager = open_key_manager(cfg)
    return keys + key_store_keys(manager, key)


def verify(  # noqa: PLR0917 -- typer maps each parameter to an option
    path: PathArg,
    signature: Annotated[
        Path | None, typer.Option("--signature", help="Signature file (default PATH/model.sig).")
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option("--public-key", help="Trusted public key (PEM); repeat for several."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Trust this key store key (every version). Default without "
                     "--public-key: every ecdsa-p256 key in the key store."),
    ] = None,
    hash_name: Annotated[
        str | None,
        typer.Option("--hash", help="Hash type, only for signatures that do not record it."),
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option("--shard-size", min=1,
                     help="Shard size, only for signatures that do not record it (default 1e9)."),
    ] = None,
    workers: WorkersOption = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Verify a model against its signature; exit 1 naming each file changed, added, removed."""
    trusted = _trusted(home, public_key or [], key)
    big = _size_hint(path) >= _PROGRESS_MIN
    try:
        with _progress(big) as progress:
            report = verify_path(
                path, trusted, signature=signature, hash_type=hash_name,
                shard_size=shard_size, workers=workers, progress=progress,
            )
    except ModelIntegrityError as exc:
        _show_report(exc.report, fmt)
        raise typer.Exit(1) from None
    _show_report(report, fmt)


def _show_report(report: VerifyReport, fmt: Format) -> None:
    if fmt is Format.json:
        emit_json(report.to_dict())
        return
    if report.ok:
        out.print(
            f"verified {report.path}: {report.files_checked} files match {report.signature} "
            f"(signed by {report.key})",
            highlight=False, markup=False,
        )
        return
    err.print(
        f"{report.path} does not match {report.signature} (signed by {report.key}): "
        f"{len(report.changes)} change(s)",
        highlight=False, markup=False,
    )
    for change in report.changes:
        out.print(f"  {change.describe()}", highlight=False, markup=False)
    for note in report.notes:
        out.print(f"  note: {note}", highlight=False, markup=False)


__all__ = ["ensure_signing_key", "register"]
