"""``tsuba audit``: append, inspect, prove and verify the tamper-evident audit log."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tsuba.cli.common import Format, FormatOption, HomeOption, emit, emit_json, out, settings
from tsuba.core.audit.importing import events_from_json_lines
from tsuba.core.audit.log import AuditLog, LogEntry
from tsuba.core.audit.signer import KeyManagerSigner
from tsuba.core.audit.treehead import SignedTreeHead
from tsuba.core.errors import InputError, NotFoundError, TsubaError
from tsuba.core.home import require_home
from tsuba.core.keys import open_key_manager
from tsuba.core.storage import open_engine
from tsuba.core.storage.migrate import require_current

app = typer.Typer(
    help="Tamper-evident audit log: append, inspect, prove, verify.", no_args_is_help=True
)


@contextmanager
def _open(home: Any, *, keys: bool) -> Iterator[AuditLog]:
    """The audit log of the data directory; ``keys`` loads the signing key and its history."""
    cfg = settings(home)
    require_home(cfg)
    engine = open_engine(cfg.sqlalchemy_url)
    try:
        require_current(engine)
        signer: KeyManagerSigner | None = None
        trusted: list[bytes] = []
        if keys:
            signer = KeyManagerSigner(open_key_manager(cfg), cfg.audit.signing_key)
            trusted = signer.all_public_keys_pem()
        log = AuditLog(engine, signer, trusted_public_keys=trusted, batch_max=cfg.audit.batch_max)
        try:
            yield log
        finally:
            log.close()
    finally:
        engine.dispose()


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _sth_text(sth: SignedTreeHead) -> dict[str, Any]:
    return {
        "tree_size": sth.tree_size,
        "root_hash": sth.root_hash.hex(),
        "signed_at": _when(sth.timestamp_ms),
        "algorithm": sth.algorithm,
        "key_id": sth.key_id,
        "signature": sth.signature.hex(),
        "log_id": sth.log_id.hex(),
    }


@app.command("verify")
def verify_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Recompute every hash and check every signed tree head; exit 1 at the first bad entry."""
    with _open(home, keys=True) as log:
        report = log.verify()
    if fmt is Format.json:
        emit_json(report.to_dict())
    elif report.ok:
        out.print(
            f"ok: {report.size} entries verified, {report.tree_heads_checked} signed tree "
            "head(s) checked",
            highlight=False,
            markup=False,
        )
    elif report.first_bad_index is not None:
        out.print(
            f"first bad index {report.first_bad_index}: {report.problem}",
            highlight=False,
            markup=False,
        )
    else:
        out.print(f"verification failed: {report.problem}", highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _entry_dict(entry: LogEntry) -> dict[str, Any]:
    try:
        event: dict[str, Any] | str = entry.event().to_dict()
    except TsubaError:
        event = entry.data.decode("utf-8", errors="replace")  # shown as stored, unparsed
    return {"index": entry.index, "leaf_hash": entry.leaf_hash.hex(), "event": event}


@app.command("tail")
def tail_cmd(
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many entries.")] = 20,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Show the last entries of the log."""
    with _open(home, keys=False) as log:
        size = log.size()
        rows = [_entry_dict(e) for e in log.entries(max(0, size - count), size)]
    if fmt is Format.json:
        emit_json(rows)
        return
    if not rows:
        out.print("(empty log)", highlight=False, markup=False)
    for row in rows:  # one line per entry, like a log file: never wrapped into a table
        ev = row["event"]
        if isinstance(ev, dict):
            line = (
                f"{row['index']:>8}  {ev['time']}  {ev['severity']:<8}  {ev['class']:<18}  "
                f"{ev.get('actor') or '-'}  {ev['message']}"
            )
        else:
            line = f"{row['index']:>8}  (unreadable entry) {ev}"
        out.print(line, highlight=False, markup=False, overflow="ignore", crop=False)


@app.command("proof")
def proof_cmd(
    index: Annotated[int, typer.Argument(min=0, help="Entry index.")],
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="Prove against this tree size.")
    ] = None,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Inclusion proof of an entry with a signed tree head (JSON is the export format)."""
    with _open(home, keys=True) as log:
        proof = log.export_inclusion(index, size)
    if fmt is Format.json:
        emit_json(proof.to_dict())
        return
    assert proof.sth is not None
    emit(
        {
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "leaf_hash": proof.leaf_hash.hex(),
            "inclusion_path": [h.hex() for h in proof.inclusion_path],
            "consistency_path": [h.hex() for h in proof.consistency_path],
            "signed_tree_size": proof.sth.tree_size,
            "signed_root": proof.sth.root_hash.hex(),
            "key_id": proof.sth.key_id,
        },
        fmt,
    )


@app.command("consistency")
def consistency_cmd(
    first: Annotated[int, typer.Argument(min=0, help="Older tree size.")],
    second: Annotated[int, typer.Argument(min=0, help="Newer tree size.")],
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Consistency proof that the log of FIRST entries is a prefix of the log of SECOND."""
    if first > second:
        raise InputError(f"FIRST ({first}) must not exceed SECOND ({second})")
    with _open(home, keys=True) as log:
        proof = log.export_consistency(first, second)
    if fmt is Format.json:
        emit_json(proof.to_dict())
        return
    emit(
        {
            "first_size": proof.first_size,
            "second_size": proof.second_size,
            "first_root": proof.first_root.hex(),
            "second_root": proof.second_root.hex(),
            "path": [h.hex() for h in proof.path],
            "first_signed": proof.first_sth is not None,
            "second_signed": proof.second_sth is not None,
        },
        fmt,
    )


@app.command("sth")
def sth_cmd(
    sign: Annotated[bool, typer.Option("--sign", help="Sign the current tree head now.")] = False,
    home: HomeOption = None,
    fmt: FormatOption = Format.text,
) -> None:
    """Show the latest signed tree head (checked), or sign the current one with --sign."""
    with _open(home, keys=True) as log:
        sth = log.sign_tree_head() if sign else log.check_tree_head(
            log.latest_signed_tree_head()
        )
    if sth is None:
        raise NotFoundError("no signed tree head yet: run 'tsuba audit sth --sign'")
    emit(sth.to_dict() if fmt is Format.json else _sth_text(sth), fmt)


@app.command("append")
def append_cmd(home: HomeOption = None, fmt: FormatOption = Format.text) -> None:
    """Append events read as JSON lines on stdin; a bad line rejects the whole input."""
    events = events_from_json_lines(sys.stdin)
    with _open(home, keys=False) as log:
        receipts = log.append_many(events)
    result = {
        "count": len(receipts),
        "first_index": receipts[0].index if receipts else None,
        "last_index": receipts[-1].index if receipts else None,
    }
    if fmt is Format.json:
        emit_json(result)
    elif receipts:
        out.print(
            f"appended {len(receipts)} events: indices {result['first_index']}.."
            f"{result['last_index']}",
            highlight=False,
            markup=False,
        )
    else:
        out.print("appended 0 events", highlight=False, markup=False)
