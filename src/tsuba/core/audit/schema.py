"""Tables of the audit log (Alembic branch ``audit``).

``audit_entries`` holds one row per entry, dense index from 0, with the entry bytes
verbatim and the hashes derived from them:

* ``leaf_hash``: RFC 9162 leaf hash of the entry.
* ``subtree_hashes``: roots of the perfect subtrees this entry completes, level 1 upwards
  (entry ``i`` completes one per trailing one-bit of ``i``; 32 bytes on average).  Every
  perfect subtree's root is thus stored exactly once, in the row of its last leaf, so any
  proof or old root needs O(log n) primary-key lookups and each append writes one row.
* ``chain_hash``: ``SHA-256(0x02 || previous chain_hash || leaf_hash)`` from 32 zero bytes:
  binds each row to its position, so a moved, inserted or removed row shows at its index.

``audit_head`` is a single row (id 1): size, root and frontier of the tree, and the last
chain hash.  Writers lock it, so index assignment is serialised across processes.

``audit_tree_heads`` keeps every signed tree head, so verification can prove the log was
neither rewritten nor truncated behind a signature.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Dialect, Integer, LargeBinary, String, Table

from tsuba.core.storage.base import Base


class Bytes(LargeBinary):
    """BLOB / bytea passed to the driver as ``bytes`` untouched.

    Both sqlite3 and psycopg take ``bytes`` natively; skipping the per-value wrapping that
    ``LargeBinary`` does removes most of SQLAlchemy's cost on bulk inserts.  The column DDL
    is exactly ``LargeBinary``'s.
    """

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        return None


# INTEGER on SQLite makes the key the rowid (no second index); BIGINT elsewhere.
INDEX_TYPE = BigInteger().with_variant(Integer(), "sqlite")

HEAD_ID = 1

entries = Table(
    "audit_entries",
    Base.metadata,
    Column("idx", INDEX_TYPE, primary_key=True, autoincrement=False),
    Column("leaf_hash", Bytes(32), nullable=False),
    Column("chain_hash", Bytes(32), nullable=False),
    Column("subtree_hashes", Bytes, nullable=False),
    Column("entry", Bytes, nullable=False),
)

head = Table(
    "audit_head",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_id", Bytes(16), nullable=False),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", Bytes(32), nullable=False),
    Column("frontier", Bytes, nullable=False),
    Column("chain_hash", Bytes(32), nullable=False),
)

tree_heads = Table(
    "audit_tree_heads",
    Base.metadata,
    Column("id", INDEX_TYPE, primary_key=True, autoincrement=True),
    Column("tree_size", BigInteger, nullable=False, index=True),
    Column("root_hash", Bytes(32), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", Bytes, nullable=False),
)
