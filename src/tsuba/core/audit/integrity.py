"""Full verification of a stored log: every entry, every stored hash, every signed head.

One pass in index order over the entries, streamed in large chunks, recomputes each leaf
hash from the entry bytes, the chain hash that pins the entry to its position, the
perfect-subtree roots the entry completes, and the root at every size a signed tree head
was made for.  It stops at the first disagreement, so the index it reports is the first
one that fails:

* an entry changed in place fails its leaf hash at its own index;
* a row inserted, removed or moved breaks the chain (or leaves a gap) at its index;
* a log rewritten with every stored hash recomputed still fails the root of the first
  signed head it crosses; then the first bad index reported is the size of the last
  signed head that still matches, the first entry no signature vouches for;
* a log cut short below a signed head's size reports the first missing index.

Signed heads are checked first: each must verify under a trusted public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, select
from sqlalchemy.exc import DBAPIError, OperationalError

from tsuba.core.audit import schema
from tsuba.core.audit.merkle import EMPTY_ROOT, fold
from tsuba.core.audit.treehead import PublicKey, SignedTreeHead
from tsuba.core.errors import IntegrityError, StorageError
from tsuba.core.storage import reader

CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    size: int
    first_bad_index: int | None = None
    problem: str | None = None
    tree_heads_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "first_bad_index": self.first_bad_index,
            "problem": self.problem,
            "tree_heads_checked": self.tree_heads_checked,
        }


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent view of the log while appends go on beside it."""
    try:
        with reader(engine).connect() as raw:
            conn = raw
            if raw.dialect.name == "postgresql":
                conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(f"storage error while reading the audit log: {exc.orig}") from exc


def stored_tree_heads(conn: Connection, log_id: bytes) -> list[tuple[int, SignedTreeHead]]:
    t = schema.tree_heads
    rows = conn.execute(
        select(t.c.id, t.c.tree_size, t.c.root_hash, t.c.timestamp_ms, t.c.algorithm,
               t.c.key_id, t.c.signature).order_by(t.c.tree_size, t.c.id)
    ).all()
    return [
        (r.id, SignedTreeHead(log_id, r.tree_size, bytes(r.root_hash), r.timestamp_ms,
                              r.algorithm, r.key_id, bytes(r.signature)))
        for r in rows
    ]


def _stream(conn: Connection, stmt: Select[Any]) -> Iterator[list[Any]]:
    """Rows of ``stmt`` in large chunks, straight from the driver, in ``conn``'s transaction.

    The statement is SQLAlchemy's own compilation of a Core select; only the row objects
    are skipped, because at a million entries building them costs more than the hashing.
    PostgreSQL streams through a server-side cursor, so memory stays at one chunk.
    """
    sql = str(stmt.compile(dialect=conn.dialect))
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="tsuba_audit_verify")
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield rows
    finally:
        cursor.close()


def check_log(engine: Engine, keys: Mapping[str, PublicKey]) -> VerifyReport:
    with snapshot(engine) as conn:
        h = schema.head
        head = conn.execute(select(h).where(h.c.id == schema.HEAD_ID)).one_or_none()
        if head is None:
            return VerifyReport(False, 0, None, "the audit tree head row is missing")
        sths = stored_tree_heads(conn, bytes(head.log_id))
        for row_id, sth in sths:
            key = keys.get(sth.key_id)
            if key is None:
                return VerifyReport(
                    False, 0, None,
                    f"signed tree head #{row_id} (size {sth.tree_size}) is signed by key "
                    f"{sth.key_id[:16]}…, which is not a trusted audit key",
                )
            try:
                sth.check(key)
            except IntegrityError as exc:
                return VerifyReport(False, 0, None, f"signed tree head #{row_id}: {exc}")
        return _check_entries(conn, head, [sth for _, sth in sths])


def _check_entries(  # noqa: PLR0911, PLR0912 -- one flat loop is what makes it fast
    conn: Connection, head: Any, sths: list[SignedTreeHead]
) -> VerifyReport:
    sha = hashlib.sha256
    head_size: int = head.tree_size
    sizes = sorted({sth.tree_size for sth in sths if sth.tree_size > 0})
    roots: dict[int, set[bytes]] = {}
    for sth in sths:
        roots.setdefault(sth.tree_size, set()).add(sth.root_hash)
    checked = len(sths)
    next_pos = 0
    next_size = sizes[0] if sizes else -1
    vouched = 0  # entries below this index match a signed head
    stack: list[bytes] = []
    chain = bytes(32)
    i = 0

    def bad(index: int | None, problem: str) -> VerifyReport:
        return VerifyReport(False, i, index, problem, checked)

    if roots.get(0, {EMPTY_ROOT}) != {EMPTY_ROOT}:
        return bad(0, "a signed tree head of size 0 names a root other than the empty tree's")

    e = schema.entries
    stmt = select(e.c.idx, e.c.entry, e.c.leaf_hash, e.c.chain_hash, e.c.subtree_hashes)
    for part in _stream(conn, stmt.order_by(e.c.idx)):
        for idx, data, leaf, chained, sub in part:
            if idx != i:
                return bad(i, f"entry {i} is missing (the next stored entry is {idx})")
            if i >= head_size:
                return bad(
                    i, f"entry {i} lies beyond the recorded tree size {head_size}: "
                    "it was added outside the log"
                )
            try:
                lh = sha(b"\x00" + data).digest()
            except TypeError:  # zero-cost unless raised: a value of another type was stored
                return bad(i, "entry is not stored as bytes: the row was modified")
            if lh != leaf:
                return bad(i, "entry bytes do not match their leaf hash: the entry was modified")
            chain = sha(b"\x02" + chain + lh).digest()
            if chain != chained:
                return bad(
                    i, "entry is out of place: its chain hash does not follow from the entries "
                    "before it (a row was inserted, removed or reordered)"
                )
            if i & 1:
                acc, s, done = lh, i, b""
                while s & 1:
                    acc = sha(b"\x01" + stack.pop() + acc).digest()
                    done += acc
                    s >>= 1
                stack.append(acc)
                if done != sub:
                    return bad(i, "stored subtree hashes do not match the entries they cover")
            else:
                stack.append(lh)
                if sub:
                    return bad(i, "stored subtree hashes do not match the entries they cover")
            i += 1
            if i == next_size:
                root = fold(stack)
                if roots[i] != {root}:
                    return bad(
                        vouched,
                        f"the first {i} entries no longer hash to the root of the signed tree "
                        f"head of size {i}: the log was rewritten at or after index {vouched}",
                    )
                vouched = i
                next_pos += 1
                next_size = sizes[next_pos] if next_pos < len(sizes) else -1
    if i < head_size:
        return bad(i, f"entry {i} is missing: the tree head records {head_size} entries")
    if next_size != -1:
        return bad(
            i, f"log truncated: a signed tree head covers {sizes[-1]} entries, "
            f"the log holds {i}"
        )
    if (
        bytes(head.root_hash) != fold(stack)
        or bytes(head.frontier) != b"".join(stack)
        or bytes(head.chain_hash) != chain
    ):
        return bad(None, "the tree head row does not match the entries: it was modified")
    return VerifyReport(True, i, None, None, checked)
