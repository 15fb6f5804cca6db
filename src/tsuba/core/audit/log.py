"""The append-only audit log: durable, Merkle-hashed, with signed tree heads.

Entries are ``SecurityEvent.canonical_bytes()`` kept verbatim, so verification never
depends on serialising an event again.  Storage (see :mod:`tsuba.core.audit.schema`)
keeps, beside each entry, the roots of the perfect subtrees it completes: each such root
is stored exactly once, in the row of its last leaf.  Any inclusion or consistency proof,
and the root at any past size, then needs O(log n) primary-key lookups (about 40 rows at a
million entries), and an append writes one row plus the one-row tree head.

Writes happen in one transaction that first locks the tree head row (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the database write lock), so
index assignment and the tree update are serialised across threads and processes.  Single
appends from many threads go through a group-commit writer: one transaction, one fsync,
for every append that queued while the previous commit ran.  ``append`` returns only once
its transaction has committed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from tsuba.core.audit import merkle, schema
from tsuba.core.audit.groupcommit import GroupCommitter
from tsuba.core.audit.integrity import VerifyReport, check_log, stored_tree_heads
from tsuba.core.audit.proofs import ConsistencyProof, InclusionProof
from tsuba.core.audit.signer import Signer
from tsuba.core.audit.treehead import (
    PublicKey,
    SignedTreeHead,
    TreeHead,
    algorithm_of,
    key_id,
    load_public_key,
    signature_valid,
    tree_head_bytes,
)
from tsuba.core.errors import (
    InputError,
    IntegrityError,
    KeyStoreError,
    NotFoundError,
    TsubaError,
)
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import reader
from tsuba.core.storage.engine import storage_error

log = logging.getLogger("tsuba.audit")

_WRITE_CHUNK = 10_000

# Built once: constructing statements costs more than a small batch's inserts.
_LOCK_HEAD = (
    select(schema.head.c.tree_size, schema.head.c.frontier, schema.head.c.chain_hash)
    .where(schema.head.c.id == schema.HEAD_ID)
    .with_for_update()
)
_INSERT_ENTRIES = insert(schema.entries)
_UPDATE_HEAD = (
    update(schema.head)
    .where(schema.head.c.id == schema.HEAD_ID)
    .values(
        tree_size=bindparam("new_size"),
        root_hash=bindparam("new_root", type_=schema.Bytes),
        frontier=bindparam("new_frontier", type_=schema.Bytes),
        chain_hash=bindparam("new_chain", type_=schema.Bytes),
    )
)
_VERIFY_HINT = "run 'tsuba audit verify'"


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an entry landed; given only once the entry is durable."""

    index: int
    leaf_hash: bytes


@dataclass(frozen=True)
class LogEntry:
    index: int
    leaf_hash: bytes
    data: bytes

    def event(self) -> SecurityEvent:
        return SecurityEvent.from_json(self.data)




def _lookup(nodes: dict[tuple[int, int], bytes]) -> merkle.NodeLookup:
    def node(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    return node


class AuditLog:
    """An audit log in the database behind ``engine``, signed by ``signer``.

    ``trusted_public_keys`` adds keys (PEM) whose old tree heads still verify, e.g.
    earlier versions of a rotated signing key.  ``sth_interval_seconds`` starts a
    background thread that signs a tree head whenever the log grew since the last one.
    """

    def __init__(
        self,
        engine: Engine,
        signer: Signer | None = None,
        *,
        trusted_public_keys: Sequence[bytes] = (),
        batch_max: int = 4096,
        sth_interval_seconds: float | None = None,
    ) -> None:
        self._engine = engine
        self._reader = reader(engine)
        self._signer = signer
        self._trusted = list(trusted_public_keys)
        self._writer_conn: Connection | None = None
        self._writer: GroupCommitter[Receipt] = GroupCommitter(
            self._write_grouped, batch_max=batch_max, on_exit=self._drop_writer_conn
        )
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        if sth_interval_seconds is not None:
            self.start_signing(sth_interval_seconds)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._writer.close()
        if self._scheduler is not None:
            self._scheduler.join()
            self._scheduler = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def append(self, event: SecurityEvent) -> Receipt:
        """Append one event; returns once it is committed (batched with concurrent callers)."""
        return self._writer.submit(event.canonical_bytes())

    def append_many(self, events: Iterable[SecurityEvent]) -> list[Receipt]:
        """Append events in order, all in one transaction: all of them or none."""
        return self._write([e.canonical_bytes() for e in events])

    def _write(self, datas: list[bytes]) -> list[Receipt]:
        if not datas:
            return []
        try:
            with self._engine.begin() as conn:
                return self._write_locked(conn, datas)
        except (OperationalError, DBAPIError) as exc:
            raise storage_error(exc, "audit log storage") from exc

    def _write_grouped(self, datas: list[bytes]) -> list[Receipt]:
        """The writer thread's commit: it keeps one connection, saving a connect per batch."""
        if self._writer_conn is None:
            try:
                self._writer_conn = self._engine.connect()
            except (OperationalError, DBAPIError) as exc:
                raise storage_error(exc, "audit log storage") from exc
        conn = self._writer_conn
        try:
            with conn.begin():
                return self._write_locked(conn, datas)
        except (OperationalError, DBAPIError) as exc:
            self._drop_writer_conn()
            raise storage_error(exc, "audit log storage") from exc

    def _drop_writer_conn(self) -> None:
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None:
            try:
                conn.close()
            except (OperationalError, DBAPIError):
                log.warning("audit: closing the writer's connection failed", exc_info=True)

    def _write_locked(self, conn: Connection, datas: list[bytes]) -> list[Receipt]:
        row = conn.execute(_LOCK_HEAD).one_or_none()
        if row is None:
            raise IntegrityError(f"the audit tree head row is missing: {_VERIFY_HINT}")
        try:
            rng = merkle.CompactRange.from_bytes(row.tree_size, bytes(row.frontier))
        except ValueError as exc:
            raise IntegrityError(f"the audit tree head is damaged ({exc}): {_VERIFY_HINT}") from exc
        chain = bytes(row.chain_hash)
        sha = hashlib.sha256
        receipts: list[Receipt] = []
        for start in range(0, len(datas), _WRITE_CHUNK):
            rows: list[dict[str, Any]] = []
            for data in datas[start : start + _WRITE_CHUNK]:
                index = rng.size
                leaf = sha(b"\x00" + data).digest()
                chain = sha(b"\x02" + chain + leaf).digest()
                rows.append(
                    {
                        "idx": index,
                        "leaf_hash": leaf,
                        "chain_hash": chain,
                        "subtree_hashes": b"".join(rng.append(leaf)),
                        "entry": data,
                    }
                )
                receipts.append(Receipt(index, leaf))
            conn.execute(_INSERT_ENTRIES, rows)
        conn.execute(
            _UPDATE_HEAD,
            {
                "new_size": rng.size,
                "new_root": rng.root(),
                "new_frontier": rng.to_bytes(),
                "new_chain": chain,
            },
        )
        return receipts

    # -- reading -------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction: on SQLite it runs beside writers instead of queueing."""
        try:
            with self._reader.begin() as conn:
                yield conn
        except (OperationalError, DBAPIError) as exc:
            raise storage_error(exc, "audit log storage") from exc

    @staticmethod
    def _head(conn: Connection) -> Any:
        h = schema.head
        row = conn.execute(select(h).where(h.c.id == schema.HEAD_ID)).one_or_none()
        if row is None:
            raise IntegrityError(f"the audit tree head row is missing: {_VERIFY_HINT}")
        return row

    def tree_head(self) -> TreeHead:
        with self._read() as conn:
            row = self._head(conn)
        return TreeHead(bytes(row.log_id), row.tree_size, bytes(row.root_hash))

    def size(self) -> int:
        return self.tree_head().tree_size

    def entries(self, start: int, stop: int) -> list[LogEntry]:
        """Entries with ``start <= index < stop`` (clipped to the log's size)."""
        if not 0 <= start <= stop:
            raise InputError(f"bad entry range [{start}, {stop}): need 0 <= start <= stop")
        e = schema.entries
        with self._read() as conn:
            rows = conn.execute(
                select(e.c.idx, e.c.leaf_hash, e.c.entry)
                .where(e.c.idx >= start, e.c.idx < stop)
                .order_by(e.c.idx)
            ).all()
        return [LogEntry(r.idx, bytes(r.leaf_hash), bytes(r.entry)) for r in rows]

    @staticmethod
    def _nodes(conn: Connection, coords: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Perfect subtree roots by (level, index), each read from the row of its last leaf."""
        where = {coord: ((coord[1] + 1) << coord[0]) - 1 for coord in coords}
        e = schema.entries
        rows: dict[int, tuple[bytes, bytes]] = {}
        if where:
            for r in conn.execute(
                select(e.c.idx, e.c.leaf_hash, e.c.subtree_hashes).where(
                    e.c.idx.in_(sorted(set(where.values())))
                )
            ):
                rows[r.idx] = (bytes(r.leaf_hash), bytes(r.subtree_hashes))
        out: dict[tuple[int, int], bytes] = {}
        for (level, index), row_idx in where.items():
            if row_idx not in rows:
                raise IntegrityError(f"audit entry {row_idx} is missing: {_VERIFY_HINT}")
            leaf, sub = rows[row_idx]
            value = leaf if level == 0 else sub[(level - 1) * 32 : level * 32]
            if len(value) != merkle.HASH_SIZE:
                raise IntegrityError(
                    f"audit entry {row_idx} lacks its subtree hashes: {_VERIFY_HINT}"
                )
            out[(level, index)] = value
        return out

    def _size_checked(self, conn: Connection, size: int | None) -> tuple[Any, int]:
        head = self._head(conn)
        n = head.tree_size if size is None else size
        if not 0 <= n <= head.tree_size:
            raise InputError(f"tree size {n} is outside 0..{head.tree_size} (the log's size)")
        return head, n

    def _root(self, conn: Connection, head: Any, size: int) -> bytes:
        nodes = self._nodes(conn, merkle.root_nodes(size))
        root = merkle.tree_root(size, _lookup(nodes))
        if size == head.tree_size and root != bytes(head.root_hash):
            raise IntegrityError(
                f"stored subtree hashes disagree with the tree head: {_VERIFY_HINT}"
            )
        return root

    def root_at(self, size: int) -> bytes:
        """The RFC 9162 root of the first ``size`` entries."""
        with self._read() as conn:
            head, n = self._size_checked(conn, size)
            return self._root(conn, head, n)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``index`` is in the tree of ``tree_size`` (default: current) entries."""
        with self._read() as conn:
            head, n = self._size_checked(conn, tree_size)
            if not 0 <= index < n:
                raise NotFoundError(f"entry {index} is not in a log of {n} entries")
            nodes = self._nodes(conn, merkle.inclusion_nodes(index, n) | merkle.root_nodes(n))
            e = schema.entries
            entry = conn.execute(select(e.c.entry).where(e.c.idx == index)).scalar_one()
            root = self._root(conn, head, n)
        lookup = _lookup(nodes)
        leaf = lookup(0, index)
        path = merkle.inclusion_proof(index, n, lookup)
        if merkle.leaf_hash(bytes(entry)) != leaf:
            raise IntegrityError(
                f"audit entry {index} does not match its leaf hash: {_VERIFY_HINT}"
            )
        if not merkle.verify_inclusion(index, n, leaf, path, root):
            raise IntegrityError(f"stored subtree hashes are inconsistent: {_VERIFY_HINT}")
        return InclusionProof(bytes(head.log_id), index, n, bytes(entry), leaf, tuple(path))

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``first`` entries is a prefix of the tree of ``second``."""
        with self._read() as conn:
            head, n = self._size_checked(conn, second)
            if not 0 <= first <= n:
                raise InputError(f"first size {first} must be between 0 and {n}")
            nodes = self._nodes(conn, merkle.consistency_nodes(first, n))
            first_root = self._root(conn, head, first)
            second_root = self._root(conn, head, n)
        path = merkle.consistency_proof(first, n, _lookup(nodes))
        if not merkle.verify_consistency(first, n, first_root, second_root, path):
            raise IntegrityError(f"stored subtree hashes are inconsistent: {_VERIFY_HINT}")
        return ConsistencyProof(bytes(head.log_id), first, n, first_root, second_root, tuple(path))

    # -- signed tree heads ---------------------------------------------------------------
    def trusted_keys(self) -> dict[str, PublicKey]:
        """Keys a stored tree head may be signed by, by key id: the signer's and the trusted."""
        pems = list(self._trusted)
        if self._signer is not None:
            pems.append(self._signer.public_key_pem())
        keys = [load_public_key(p) for p in pems]
        return {key_id(k): k for k in keys}

    def sign_tree_head(self) -> SignedTreeHead:
        """Sign and store the current tree head (signing happens outside the write lock)."""
        if self._signer is None:
            raise KeyStoreError("no audit signing key is configured: tree heads cannot be signed")
        with self._read() as conn:
            head = self._head(conn)
            root = self._root(conn, head, head.tree_size)
        log_id = bytes(head.log_id)
        timestamp = time.time_ns() // 1_000_000
        data = tree_head_bytes(log_id, head.tree_size, timestamp, root)
        signature = self._signer.sign(data)
        try:
            key = load_public_key(self._signer.public_key_pem())
        except InputError as exc:
            raise KeyStoreError(f"audit signing key: {exc}") from exc
        if not signature_valid(key, signature, data):
            raise KeyStoreError(
                "the audit signing key returned a signature its public key does not verify"
            )
        sth = SignedTreeHead(
            log_id, head.tree_size, root, timestamp, algorithm_of(key), key_id(key), signature
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(schema.tree_heads).values(
                        tree_size=sth.tree_size,
                        root_hash=sth.root_hash,
                        timestamp_ms=sth.timestamp_ms,
                        algorithm=sth.algorithm,
                        key_id=sth.key_id,
                        signature=sth.signature,
                    )
                )
        except (OperationalError, DBAPIError) as exc:
            raise storage_error(exc, "audit log storage") from exc
        return sth

    def signed_tree_heads(self) -> list[SignedTreeHead]:
        """Every stored signed tree head, smallest size first."""
        with self._read() as conn:
            head = self._head(conn)
            return [sth for _, sth in stored_tree_heads(conn, bytes(head.log_id))]

    def _stored_head(self, size: int | None = None) -> SignedTreeHead | None:
        t = schema.tree_heads
        with self._read() as conn:
            head = self._head(conn)
            target = size
            if target is None:
                target = conn.execute(select(func.max(t.c.tree_size))).scalar_one_or_none()
                if target is None:
                    return None
            row = conn.execute(
                select(t).where(t.c.tree_size == target).order_by(t.c.id.desc()).limit(1)
            ).one_or_none()
        if row is None:
            return None
        return SignedTreeHead(
            bytes(head.log_id), row.tree_size, bytes(row.root_hash), row.timestamp_ms,
            row.algorithm, row.key_id, bytes(row.signature),
        )

    def latest_signed_tree_head(self) -> SignedTreeHead | None:
        """The stored signed head of the largest size (the newest among equals)."""
        return self._stored_head()

    def check_tree_head(self, sth: SignedTreeHead | None) -> SignedTreeHead | None:
        """``sth`` once its signature verifies under a trusted key (IntegrityError if not)."""
        if sth is None:
            return None
        key = self.trusted_keys().get(sth.key_id)
        if key is None:
            raise IntegrityError(
                f"stored tree head of size {sth.tree_size} is signed by an untrusted key: "
                f"{_VERIFY_HINT}"
            )
        sth.check(key)
        return sth

    def sign_if_grown(self) -> SignedTreeHead | None:
        """Sign a tree head if the log grew since the last one; what the schedule runs."""
        latest = self.latest_signed_tree_head()
        if self.size() > (latest.tree_size if latest else 0):
            return self.sign_tree_head()
        return None

    def start_signing(self, interval_seconds: float) -> None:
        """Sign tree heads in the background every ``interval_seconds`` while the log grows."""
        if interval_seconds <= 0:
            raise InputError("tree head signing interval must be positive")
        if self._signer is None:
            raise KeyStoreError("no audit signing key is configured: tree heads cannot be signed")
        if self._scheduler is not None:
            return
        self._scheduler = threading.Thread(
            target=self._sign_on_schedule, args=(interval_seconds,),
            name="tsuba-audit-sth", daemon=True,
        )
        self._scheduler.start()

    def _sign_on_schedule(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sign_if_grown()
            except TsubaError as exc:
                log.error("audit: scheduled tree head signing failed: %s", exc)
            except Exception:
                log.exception("audit: scheduled tree head signing failed")

    # -- exports: proofs tied to signed heads --------------------------------------------
    def export_inclusion(self, index: int, tree_size: int | None = None) -> InclusionProof:
        """An inclusion proof bundled with a signed head that covers it.

        The newest stored head is used when it covers the proof; otherwise the current head
        is signed now.  A proof at a smaller ``tree_size`` carries the consistency path from
        that size to the head's.
        """
        size = self.size()
        if tree_size is not None and tree_size > size:
            raise InputError(f"tree size {tree_size} is outside 0..{size} (the log's size)")
        if not 0 <= index < (size if tree_size is None else tree_size):
            raise NotFoundError(f"entry {index} is not in a log of {tree_size or size} entries")
        sth = self.check_tree_head(self.latest_signed_tree_head())
        want = index + 1 if tree_size is None else max(tree_size, index + 1)
        if sth is None or sth.tree_size < want:
            sth = self.sign_tree_head()
        n = sth.tree_size if tree_size is None else tree_size
        proof = self.inclusion_proof(index, n)
        path: tuple[bytes, ...] = ()
        if n < sth.tree_size:
            cons = self.consistency_proof(n, sth.tree_size)
            if cons.second_root != sth.root_hash:
                raise IntegrityError(
                    f"the log no longer matches its signed head of size {sth.tree_size}: "
                    f"{_VERIFY_HINT}"
                )
            path = cons.path
        elif self.root_at(n) != sth.root_hash:
            raise IntegrityError(
                f"the log no longer matches its signed head of size {n}: {_VERIFY_HINT}"
            )
        return replace(proof, consistency_path=path, sth=sth)

    def export_consistency(self, first: int, second: int) -> ConsistencyProof:
        """A consistency proof with the stored signed heads of both sizes, where there are."""
        proof = self.consistency_proof(first, second)
        first_sth = self.check_tree_head(self._stored_head(first))
        second_sth = self.check_tree_head(self._stored_head(second))
        for sth, root in ((first_sth, proof.first_root), (second_sth, proof.second_root)):
            if sth is not None and sth.root_hash != root:
                raise IntegrityError(
                    f"the log no longer matches its signed head of size {sth.tree_size}: "
                    f"{_VERIFY_HINT}"
                )
        return replace(proof, first_sth=first_sth, second_sth=second_sth)

    # -- verification ----------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Recompute everything from the entry bytes and check every signed head."""
        return check_log(self._engine, self.trusted_keys())
