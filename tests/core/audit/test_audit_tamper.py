"""Tampering with the stored log, directly through SQLAlchemy, is found at the right index.

The log has 40 entries with signed tree heads at sizes 16 and 40.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from tsuba.core.audit import AuditLog, PrivateKeySigner, merkle, schema
from tsuba.core.audit.treehead import key_id, load_public_key, tree_head_bytes

E = schema.entries
SIZE = 40


@pytest.fixture
def log40(audit_log: AuditLog, event) -> AuditLog:
    audit_log.append_many([event(i) for i in range(16)])
    audit_log.sign_tree_head()
    for i in range(16, SIZE):
        audit_log.append(event(i))
    audit_log.sign_tree_head()
    assert audit_log.verify().ok
    return audit_log


def _row(conn: Connection, idx: int) -> dict[str, Any]:
    return dict(conn.execute(select(E).where(E.c.idx == idx)).one()._mapping)


def _shift(conn: Connection, start: int, by: int) -> None:
    """Move rows ``idx >= start`` by ``by`` without tripping the primary key midway."""
    far = 1_000_000
    conn.execute(update(E).where(E.c.idx >= start).values(idx=E.c.idx + far))
    conn.execute(update(E).where(E.c.idx >= far).values(idx=E.c.idx - far + by))


def _report(log: AuditLog) -> tuple[bool, int | None, str]:
    r = log.verify()
    return r.ok, r.first_bad_index, r.problem or ""


def test_modified_entry_is_found_at_its_index(log40: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        row = _row(conn, 13)
        forged = bytes(row["entry"]).replace(b"request 13", b"request 99")
        conn.execute(update(E).where(E.c.idx == 13).values(entry=forged))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, 13)
    assert "modified" in problem


def test_entry_rewritten_as_text_is_found_not_crashed(log40: AuditLog, engine: Engine) -> None:
    # SQL's replace() on a BLOB yields TEXT: the row then holds a value of another type.
    if engine.dialect.name != "sqlite":
        pytest.skip("a bytea column cannot hold a value of another type")
    with engine.begin() as conn:
        conn.execute(
            update(E).where(E.c.idx == 7).values(entry=func.replace(E.c.entry, "a", "b"))
        )
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, 7)
    assert "modified" in problem


def test_modified_entry_with_recomputed_leaf_hash_is_found(log40: AuditLog, engine) -> None:
    with engine.begin() as conn:
        forged = bytes(_row(conn, 22)["entry"]).replace(b"alice", b"mallory")
        conn.execute(update(E).where(E.c.idx == 22).values(
            entry=forged, leaf_hash=merkle.leaf_hash(forged)))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, 22)
    assert "out of place" in problem


@pytest.mark.parametrize("victim", [0, 13, 39])
def test_deleted_row_is_found_at_its_index(log40: AuditLog, engine: Engine, victim: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(E).where(E.c.idx == victim))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, victim)
    assert "missing" in problem


def test_deleted_row_with_later_rows_moved_down_is_found(log40: AuditLog, engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(E).where(E.c.idx == 13))
        _shift(conn, 14, -1)
    ok, bad, _ = _report(log40)
    assert (ok, bad) == (False, 13)


@pytest.mark.parametrize("at", [12, 13])
def test_inserted_row_is_found_at_its_index(log40: AuditLog, engine: Engine, at: int) -> None:
    with engine.begin() as conn:
        displaced = _row(conn, at)
        _shift(conn, at, 1)
        forged = bytes(displaced["entry"]).replace(b"alice", b"mallory")
        conn.execute(insert(E).values(
            idx=at,
            entry=forged,
            leaf_hash=merkle.leaf_hash(forged),
            chain_hash=displaced["chain_hash"],
            subtree_hashes=displaced["subtree_hashes"],
        ))
    ok, bad, _ = _report(log40)
    assert (ok, bad) == (False, at)


@pytest.mark.parametrize(("a", "b"), [(12, 20), (13, 14), (2, 35)])
def test_swapped_rows_are_found_at_the_first(log40: AuditLog, engine: Engine, a, b) -> None:
    with engine.begin() as conn:
        conn.execute(update(E).where(E.c.idx == a).values(idx=-1))
        conn.execute(update(E).where(E.c.idx == b).values(idx=a))
        conn.execute(update(E).where(E.c.idx == -1).values(idx=b))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, a)
    assert "out of place" in problem


def test_row_added_outside_the_log_is_found(log40: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        last = _row(conn, SIZE - 1)
        data = b'{"class":"api_activity","message":"slipped in"}'
        leaf = merkle.leaf_hash(data)
        conn.execute(insert(E).values(
            idx=SIZE, entry=data, leaf_hash=leaf, subtree_hashes=b"",
            chain_hash=hashlib.sha256(b"\x02" + last["chain_hash"] + leaf).digest()))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, SIZE)
    assert "outside the log" in problem


def _rebuild(conn: Connection, datas: list[bytes]) -> None:
    """What a forger who knows every algorithm would write: all stored hashes recomputed."""
    conn.execute(delete(E))
    rng, chain = merkle.CompactRange(), bytes(32)
    for i, data in enumerate(datas):
        leaf = merkle.leaf_hash(data)
        chain = hashlib.sha256(b"\x02" + chain + leaf).digest()
        conn.execute(insert(E).values(
            idx=i, entry=data, leaf_hash=leaf, chain_hash=chain,
            subtree_hashes=b"".join(rng.append(leaf))))
    conn.execute(update(schema.head).values(
        tree_size=rng.size, root_hash=rng.root(), frontier=rng.to_bytes(), chain_hash=chain))


def test_log_truncated_behind_a_signed_head_is_found(log40: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        datas = [bytes(r.entry) for r in conn.execute(select(E.c.entry).order_by(E.c.idx))]
        _rebuild(conn, datas[:30])  # a self-consistent log of 30 entries
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, 30)
    assert "truncated" in problem and "40" in problem


def test_fully_recomputed_rewrite_is_caught_by_the_signed_head(log40, engine) -> None:
    with engine.begin() as conn:
        datas = [bytes(r.entry) for r in conn.execute(select(E.c.entry).order_by(E.c.idx))]
        datas[25] = datas[25].replace(b"alice", b"mallory")
        _rebuild(conn, datas)
    ok, bad, problem = _report(log40)
    # Entries 0..15 still match the head signed at 16; nothing vouches for 16 onwards.
    assert (ok, bad) == (False, 16)
    assert "signed tree head of size 40" in problem


def test_rewrite_below_the_first_signed_head_reports_index_zero(log40, engine) -> None:
    with engine.begin() as conn:
        datas = [bytes(r.entry) for r in conn.execute(select(E.c.entry).order_by(E.c.idx))]
        datas[3], datas[4] = datas[4], datas[3]
        _rebuild(conn, datas)
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, 0)
    assert "size 16" in problem


def test_forged_signature_on_a_stored_head_is_found(log40: AuditLog, engine: Engine) -> None:
    t = schema.tree_heads
    with engine.begin() as conn:
        sig = bytes(conn.execute(select(t.c.signature).where(t.c.tree_size == 16)).scalar_one())
        conn.execute(update(t).where(t.c.tree_size == 16).values(
            signature=bytes([sig[0] ^ 1]) + sig[1:]))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, None)
    assert "signature does not verify" in problem


def test_head_signed_by_a_foreign_key_is_refused(log40: AuditLog, engine: Engine) -> None:
    mallory = PrivateKeySigner.generate()
    head = log40.tree_head()
    sig = mallory.sign(tree_head_bytes(head.log_id, 40, 0, head.root_hash))
    with engine.begin() as conn:
        conn.execute(insert(schema.tree_heads).values(
            tree_size=40, root_hash=head.root_hash, timestamp_ms=0, algorithm="ed25519",
            key_id=key_id(load_public_key(mallory.public_key_pem())), signature=sig))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, None)
    assert "not a trusted audit key" in problem


def test_altered_signed_root_is_found(log40: AuditLog, engine: Engine) -> None:
    t = schema.tree_heads
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.tree_size == 40).values(root_hash=bytes(32)))
    ok, _, problem = _report(log40)
    assert not ok and "signature does not verify" in problem


def test_modified_tree_head_row_is_found(log40: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(schema.head).values(root_hash=bytes(32)))
    ok, bad, problem = _report(log40)
    assert (ok, bad) == (False, None)
    assert "tree head row" in problem


def test_missing_tree_head_row_is_found(log40: AuditLog, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(schema.head))
    ok, _, problem = _report(log40)
    assert not ok and "head row is missing" in problem
