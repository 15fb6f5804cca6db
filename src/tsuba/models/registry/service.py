"""The model registry: versions, provenance, lineage and status, one transaction per change.

Each change is committed first and then handed to ``emit`` as one SecurityEvent (the CLI
passes ``Platform.record``: audit log, then bus).  Emitting after the commit keeps the audit
append out of this transaction: on SQLite a second writer inside it would wait on our own
write lock.  Status changes also reset every serving gate of this process at once; other
processes see them within their gate's cache time (at most one second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, cast, func, literal, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from tsuba.core.errors import ConflictError, InputError, NotFoundError, StorageError
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import reader
from tsuba.models.registry.events import registered_event, status_event
from tsuba.models.registry.records import (
    DatasetRef,
    Lineage,
    LineageEntry,
    ModelRef,
    Status,
    VersionInfo,
    check_name,
    check_version,
    parse_params,
)
from tsuba.models.registry.tables import DatasetLinkRow, LineageRow, ModelVersionRow

Emit = Callable[[SecurityEvent], object]
MAX_DEPTH = 256  # lineage deeper than this is not followed (and is not plausible)
MAX_REASON = 1024
MAX_ACTOR = 128
# Allowed status changes: target -> statuses it may come from.
_FROM: dict[str, tuple[str, ...]] = {
    "quarantined": ("active", "retired"),
    "active": ("quarantined",),
    "retired": ("active", "quarantined"),
}
_status_listeners: list[Callable[[str, str], None]] = []


def on_status_change(listener: Callable[[str, str], None]) -> None:
    """Call ``listener(name, version)`` after any status change committed in this process."""
    _status_listeners.append(listener)


def cast_status(value: str) -> Status:
    if value not in _FROM:
        raise StorageError(f"model registry holds an unknown status {value!r}")
    return value  # type: ignore[return-value]


def _now() -> datetime:
    return datetime.now(UTC)


def _storage(exc: sa_exc.SQLAlchemyError) -> StorageError:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return StorageError(f"storage error: {text.splitlines()[0] if text else type(exc).__name__}")


class Registry:
    def __init__(self, engine: Engine, *, actor: str, emit: Emit | None = None) -> None:
        if not actor or len(actor) > MAX_ACTOR:
            raise InputError(f"actor must be 1 to {MAX_ACTOR} characters")
        self.engine = engine
        self.actor = actor
        self.emit = emit

    # -- reads -----------------------------------------------------------------------------
    def _row(self, session: Session, ref: ModelRef) -> ModelVersionRow:
        query = select(ModelVersionRow).where(ModelVersionRow.name == ref.name)
        if ref.version is not None:
            query = query.where(ModelVersionRow.version == ref.version)
        else:
            query = query.order_by(ModelVersionRow.id.desc()).limit(1)
        row = session.scalars(query).first()
        if row is None:
            raise NotFoundError(
                f"model {ref} is not registered: see 'tsuba model list', or register it with "
                "'tsuba model register NAME VERSION PATH'"
            )
        return row

    def _info(self, session: Session, row: ModelVersionRow) -> VersionInfo:
        datasets = session.execute(
            select(DatasetLinkRow.digest, DatasetLinkRow.name)
            .where(DatasetLinkRow.version_id == row.id)
            .order_by(DatasetLinkRow.id)
        ).all()
        parents = session.execute(
            select(ModelVersionRow.name, ModelVersionRow.version)
            .join(LineageRow, LineageRow.parent_id == ModelVersionRow.id)
            .where(LineageRow.child_id == row.id)
            .order_by(ModelVersionRow.name, ModelVersionRow.version)
        ).all()
        return VersionInfo(
            name=row.name,
            version=row.version,
            status=cast_status(row.status),
            uri=row.uri,
            source=row.source,
            root_digest=row.root_digest,
            serialization=dict(row.serialization),
            key_hint=row.key_hint,
            signed_by=row.signed_by,
            file_count=row.file_count,
            total_bytes=row.total_bytes,
            scan=dict(row.scan),
            params=dict(row.params),
            created_at=row.created_at,
            created_by=row.created_by,
            verified_at=row.verified_at,
            status_reason=row.status_reason,
            status_changed_at=row.status_changed_at,
            status_changed_by=row.status_changed_by,
            datasets=tuple(DatasetRef(d, n) for d, n in datasets),
            parents=tuple(f"{n}:{v}" for n, v in parents),
            signature=row.signature,
        )

    def get(self, ref: str | ModelRef) -> VersionInfo:
        """One version; a bare name means its newest version."""
        model = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        try:
            with Session(reader(self.engine)) as session:
                return self._info(session, self._row(session, model))
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc

    def list_versions(
        self, *, name: str | None = None, status: Status | None = None
    ) -> list[VersionInfo]:
        query = select(ModelVersionRow).order_by(ModelVersionRow.name, ModelVersionRow.id)
        if name is not None:
            query = query.where(ModelVersionRow.name == check_name(name))
        if status is not None:
            query = query.where(ModelVersionRow.status == status)
        try:
            with Session(reader(self.engine)) as session:
                return [self._info(session, row) for row in session.scalars(query)]
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc

    # -- registration ----------------------------------------------------------------------
    def check_new(self, name: str, version: str, parents: Sequence[str] = ()) -> None:
        """Refuse early (before any hashing) a duplicate version or an unknown parent."""
        check_name(name)
        check_version(version)
        with Session(reader(self.engine)) as session:
            exists = session.scalar(
                select(ModelVersionRow.id).where(
                    ModelVersionRow.name == name, ModelVersionRow.version == version
                )
            )
            if exists is not None:
                raise ConflictError(f"model {name}:{version} is already registered")
            for parent in parents:
                self._row(session, ModelRef.parse(parent, need_version=True))

    def record(
        self,
        *,
        name: str,
        version: str,
        uri: str,
        root_digest: str,
        serialization: dict[str, Any],
        signature: str,
        key_hint: str,
        signed_by: str,
        file_count: int,
        total_bytes: int,
        scan: dict[str, Any],
        source: str | None = None,
        datasets: Iterable[DatasetRef | str] = (),
        parents: Iterable[str] = (),
        params: dict[str, Any] | list[str] | None = None,
    ) -> VersionInfo:
        """Store a version whose signature was just made or verified (so: verified now)."""
        check_name(name)
        check_version(version)
        refs = [d if isinstance(d, DatasetRef) else DatasetRef.parse(d) for d in datasets]
        if len({d.digest for d in refs}) != len(refs):
            raise InputError("the same dataset digest is given twice")
        parent_refs = [ModelRef.parse(p, need_version=True) for p in parents]
        if len(set(parent_refs)) != len(parent_refs):
            raise InputError("the same parent model is given twice")
        hyper = parse_params(params)
        now = _now()
        try:
            with Session(self.engine) as session, session.begin():
                parent_rows = [self._row(session, p) for p in parent_refs]
                row = ModelVersionRow(
                    name=name, version=version, status="active", uri=uri, source=source,
                    root_digest=root_digest, serialization=serialization, signature=signature,
                    key_hint=key_hint, signed_by=signed_by[:256], file_count=file_count,
                    total_bytes=total_bytes, scan=scan, params=hyper, created_at=now,
                    created_by=self.actor, verified_at=now, status_reason=None,
                    status_changed_at=now, status_changed_by=self.actor,
                )
                session.add(row)
                session.flush()
                for ref in refs:
                    session.add(DatasetLinkRow(version_id=row.id, digest=ref.digest,
                                               name=ref.name))
                for parent in parent_rows:
                    session.add(LineageRow(child_id=row.id, parent_id=parent.id))
                session.flush()
                info = self._info(session, row)
        except sa_exc.IntegrityError:
            raise ConflictError(f"model {name}:{version} is already registered") from None
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc
        if self.emit is not None:
            self.emit(registered_event(info, actor=self.actor))
        return info

    # -- status ----------------------------------------------------------------------------
    def quarantine(self, ref: str, reason: str) -> VersionInfo:
        """Stop a version from being served, at once; recorded as a high-severity event."""
        return self.set_status(ref, "quarantined", reason)

    def release(self, ref: str, reason: str) -> VersionInfo:
        return self.set_status(ref, "active", reason)

    def retire(self, ref: str, reason: str | None = None) -> VersionInfo:
        return self.set_status(ref, "retired", reason)

    def set_status(self, ref: str, status: Status, reason: str | None) -> VersionInfo:
        model = ModelRef.parse(ref, need_version=True)
        if status not in _FROM:
            raise InputError(f"unknown status {status!r}: active, quarantined or retired")
        if reason is not None and len(reason) > MAX_REASON:
            raise InputError(f"reason is longer than {MAX_REASON} characters")
        if status == "quarantined" and not reason:
            raise InputError("say why the model is quarantined (--reason)")
        try:
            with Session(self.engine) as session, session.begin():
                row = self._row(session, model)
                previous = row.status
                if previous == status:
                    return self._info(session, row)  # nothing changes, nothing to record
                if previous not in _FROM[status]:
                    raise ConflictError(
                        f"model {model} is {previous}: it cannot become {status} "
                        f"(only from {' or '.join(_FROM[status])})"
                    )
                row.status = status
                row.status_reason = reason
                row.status_changed_at = _now()
                row.status_changed_by = self.actor
                session.flush()
                info = self._info(session, row)
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc
        for listener in list(_status_listeners):
            listener(info.name, info.version)
        if self.emit is not None:
            self.emit(status_event(info, previous, actor=self.actor, reason=reason))
        return info

    def mark_unverified(self, ref: str) -> None:
        """Clear a version's verification (its files no longer match its signature)."""
        model = ModelRef.parse(ref, need_version=True)
        with Session(self.engine) as session, session.begin():
            self._row(session, model).verified_at = None
        for listener in list(_status_listeners):
            listener(model.name, model.version or "")

    def mark_verified(self, ref: str) -> None:
        model = ModelRef.parse(ref, need_version=True)
        with Session(self.engine) as session, session.begin():
            self._row(session, model).verified_at = _now()

    # -- lineage ---------------------------------------------------------------------------
    def _walk(self, session: Session, start: list[int], *, down: bool) -> dict[int, int]:
        """id -> smallest depth of every version reachable from ``start`` (not included)."""
        if not start:
            return {}
        near, far = (
            (LineageRow.parent_id, LineageRow.child_id) if down
            else (LineageRow.child_id, LineageRow.parent_id)
        )
        seed = (
            select(far.label("id"), cast(literal(1), Integer).label("depth"))
            .where(near.in_(start))
            .cte("reach", recursive=True)
        )
        step = (
            select(far.label("id"), (seed.c.depth + 1).label("depth"))
            .join(seed, near == seed.c.id)
            .where(seed.c.depth < MAX_DEPTH)
        )
        reach = seed.union(step)
        rows = session.execute(
            select(reach.c.id, func.min(reach.c.depth)).group_by(reach.c.id)
        ).all()
        return {int(i): int(d) for i, d in rows}

    def _entries(self, session: Session, depths: dict[int, int]) -> tuple[LineageEntry, ...]:
        if not depths:
            return ()
        rows = session.execute(
            select(ModelVersionRow.id, ModelVersionRow.name, ModelVersionRow.version,
                   ModelVersionRow.status).where(ModelVersionRow.id.in_(list(depths)))
        ).all()
        entries = [
            LineageEntry(f"{n}:{v}", cast_status(s), depths[i]) for i, n, v, s in rows
        ]
        return tuple(sorted(entries, key=lambda e: (e.depth, e.ref)))

    def lineage(self, ref: str) -> Lineage:
        """Ancestors, descendants, and every dataset behind a version (transitively)."""
        model = ModelRef.parse(ref)
        try:
            with Session(reader(self.engine)) as session:
                row = self._row(session, model)
                ups = self._walk(session, [row.id], down=False)
                downs = self._walk(session, [row.id], down=True)
                datasets = session.execute(
                    select(DatasetLinkRow.digest, DatasetLinkRow.name)
                    .where(DatasetLinkRow.version_id.in_([row.id, *ups]))
                    .order_by(DatasetLinkRow.digest)
                ).all()
                seen: dict[str, DatasetRef] = {}
                for digest, name in datasets:
                    seen.setdefault(digest, DatasetRef(digest, name))
                return Lineage(
                    subject=f"{row.name}:{row.version}",
                    ancestors=self._entries(session, ups),
                    descendants=self._entries(session, downs),
                    datasets=tuple(seen.values()),
                )
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc

    def derived_from_dataset(self, digest: str) -> Lineage:
        """Every version trained on the dataset (depth 0) or derived from one that was."""
        dataset = DatasetRef.parse(digest)
        try:
            with Session(reader(self.engine)) as session:
                direct = list(session.scalars(
                    select(DatasetLinkRow.version_id).where(
                        DatasetLinkRow.digest == dataset.digest
                    )
                ))
                depths = {i: 0 for i in direct}
                for i, d in self._walk(session, direct, down=True).items():
                    depths.setdefault(i, d)
                return Lineage(
                    subject=dataset.digest,
                    descendants=self._entries(session, depths),
                    datasets=(dataset,),
                )
        except sa_exc.SQLAlchemyError as exc:
            raise _storage(exc) from exc


__all__ = ["Emit", "Registry", "on_status_change"]
