"""The storage-backed audit log on SQLite and PostgreSQL: appends, proofs, signed heads."""

from __future__ import annotations

import threading
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, delete, insert, select

from tsuba.core.audit import AuditLog, PrivateKeySigner, merkle, schema
from tsuba.core.audit.treehead import key_id, load_public_key
from tsuba.core.audit.verify import verify_consistency, verify_inclusion, verify_tree_head
from tsuba.core.errors import InputError, IntegrityError, KeyStoreError, NotFoundError, StorageError
from tsuba.core.storage import Base, open_engine


def test_migration_creates_exactly_the_model_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    ours = [d for d in diffs if "audit_" in repr(d)]
    assert ours == []
    with engine.connect() as conn:
        head = conn.execute(select(schema.head)).one()
    assert (head.id, head.tree_size, bytes(head.root_hash)) == (1, 0, merkle.EMPTY_ROOT)
    assert len(bytes(head.log_id)) == 16


def test_appends_get_dense_indices_and_keep_bytes_verbatim(audit_log: AuditLog, event) -> None:
    first = audit_log.append(event(0))
    rest = audit_log.append_many([event(i) for i in range(1, 6)])
    assert [r.index for r in (first, *rest)] == list(range(6))
    stored = audit_log.entries(0, 10)
    assert [e.index for e in stored] == list(range(6))
    for i, e in enumerate(stored):
        assert e.leaf_hash == merkle.leaf_hash(e.data)
        assert e.event().message == f"request {i}"
    assert [r.leaf_hash for r in (first, *rest)] == [e.leaf_hash for e in stored]
    assert audit_log.entries(2, 4)[0].index == 2 and len(audit_log.entries(2, 4)) == 2
    with pytest.raises(InputError):
        audit_log.entries(3, 1)


def test_stored_bytes_are_exactly_the_canonical_bytes(audit_log: AuditLog, event) -> None:
    ev = event(7, attributes={"tokens": 12, "note": "ünïcode ✓"})
    receipt = audit_log.append(ev)
    (entry,) = audit_log.entries(receipt.index, receipt.index + 1)
    assert entry.data == ev.canonical_bytes()
    assert receipt.leaf_hash == merkle.leaf_hash(ev.canonical_bytes())


def test_roots_match_the_rfc_root_of_the_entries(audit_log: AuditLog, event) -> None:
    events = [event(i) for i in range(37)]
    audit_log.append_many(events[:20])
    for ev in events[20:]:
        audit_log.append(ev)
    hashes = [merkle.leaf_hash(ev.canonical_bytes()) for ev in events]
    head = audit_log.tree_head()
    assert head.tree_size == audit_log.size() == 37
    assert head.root_hash == merkle.root_of(hashes)
    for size in (0, 1, 2, 5, 16, 31, 32, 36):
        assert audit_log.root_at(size) == merkle.root_of(hashes[:size])


def test_every_inclusion_and_consistency_proof_verifies(audit_log: AuditLog, event) -> None:
    n = 37
    audit_log.append_many([event(i) for i in range(n)])
    roots = {m: audit_log.root_at(m) for m in range(n + 1)}
    for size in (1, 8, 23, n):
        for i in range(size):
            proof = audit_log.inclusion_proof(i, size)
            assert (proof.leaf_index, proof.tree_size) == (i, size)
            assert merkle.verify_inclusion(
                i, size, proof.leaf_hash, proof.inclusion_path, roots[size]
            )
    for first in range(n + 1):
        cons = audit_log.consistency_proof(first, n)
        assert (cons.first_root, cons.second_root) == (roots[first], roots[n])
        assert merkle.verify_consistency(first, n, roots[first], roots[n], cons.path)


def test_proof_requests_outside_the_log_are_refused(audit_log: AuditLog, event) -> None:
    audit_log.append_many([event(i) for i in range(3)])
    with pytest.raises(NotFoundError, match="entry 3 is not in a log of 3"):
        audit_log.inclusion_proof(3)
    with pytest.raises(InputError, match="tree size 9"):
        audit_log.inclusion_proof(0, 9)
    with pytest.raises(InputError, match="first size 4"):
        audit_log.consistency_proof(4, 3)


def test_append_many_is_all_or_nothing(audit_log: AuditLog, engine: Engine, event) -> None:
    audit_log.append_many([event(i) for i in range(4)])
    before = audit_log.tree_head()
    # A stray row where the batch's third entry would go makes the batch fail midway.
    with engine.begin() as conn:
        conn.execute(insert(schema.entries).values(
            idx=6, leaf_hash=bytes(32), chain_hash=bytes(32), subtree_hashes=b"", entry=b"x"))
    with pytest.raises(StorageError):
        audit_log.append_many([event(i) for i in range(10, 15)])
    with engine.begin() as conn:
        conn.execute(delete(schema.entries).where(schema.entries.c.idx == 6))
    assert audit_log.tree_head() == before
    assert [e.index for e in audit_log.entries(0, 100)] == [0, 1, 2, 3]
    assert audit_log.verify().ok


def test_concurrent_threads_share_commits_and_get_distinct_indices(
    audit_log: AuditLog, event
) -> None:
    receipts: list = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(40):
            r = audit_log.append(event(i, actor=f"thread-{t}"))
            with lock:
                receipts.append(r)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.index for r in receipts) == list(range(320))
    by_index = {e.index: e.leaf_hash for e in audit_log.entries(0, 320)}
    assert all(by_index[r.index] == r.leaf_hash for r in receipts)
    assert audit_log.verify().ok


def test_an_acknowledged_append_is_visible_to_another_connection(
    audit_log: AuditLog, db_url: str, event
) -> None:
    receipt = audit_log.append(event(1))
    other = open_engine(db_url)
    try:
        with other.connect() as conn:
            stored = conn.execute(
                select(schema.entries.c.leaf_hash).where(schema.entries.c.idx == receipt.index)
            ).scalar_one()
    finally:
        other.dispose()
    assert bytes(stored) == receipt.leaf_hash


def test_a_failed_batch_fails_its_callers_and_the_log_recovers(
    audit_log: AuditLog, engine: Engine, event
) -> None:
    audit_log.append(event(0))
    with engine.begin() as conn:
        row = conn.execute(select(schema.head)).one()
        conn.execute(delete(schema.head))
    with pytest.raises(IntegrityError, match="tree head row is missing"):
        audit_log.append(event(1))
    with engine.begin() as conn:
        conn.execute(insert(schema.head).values(**row._asdict()))
    assert audit_log.append(event(2)).index == 1
    assert audit_log.verify().ok


def test_a_closed_log_refuses_appends(engine: Engine, event) -> None:
    log = AuditLog(engine)
    log.append(event(0))
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.append(event(1))


def test_signed_tree_head_verifies_with_the_public_key(
    audit_log: AuditLog, signer: PrivateKeySigner, event
) -> None:
    audit_log.append_many([event(i) for i in range(5)])
    sth = audit_log.sign_tree_head()
    assert (sth.tree_size, sth.root_hash) == (5, audit_log.root_at(5))
    assert sth.algorithm == "ed25519"
    assert sth.key_id == key_id(load_public_key(signer.public_key_pem()))
    assert verify_tree_head(sth.to_dict(), signer.public_key_pem()) == sth
    assert audit_log.latest_signed_tree_head() == sth
    assert audit_log.signed_tree_heads() == [sth]


def test_without_a_signer_heads_cannot_be_signed(engine: Engine, event) -> None:
    log = AuditLog(engine)
    log.append(event(0))
    with pytest.raises(KeyStoreError, match="no audit signing key"):
        log.sign_tree_head()
    log.close()


def test_nothing_is_signed_for_a_proof_that_cannot_exist(audit_log: AuditLog, event) -> None:
    with pytest.raises(NotFoundError, match="entry 0 is not in a log of 0"):
        audit_log.export_inclusion(0)
    audit_log.append(event(0))
    with pytest.raises(InputError, match="tree size 5"):
        audit_log.export_inclusion(0, tree_size=5)
    assert audit_log.signed_tree_heads() == []


def test_a_schedule_without_a_key_is_refused(engine: Engine) -> None:
    with pytest.raises(KeyStoreError, match="no audit signing key"):
        AuditLog(engine, sth_interval_seconds=1.0)


def test_schedule_signs_only_when_the_log_grew(engine: Engine, signer, event) -> None:
    log = AuditLog(engine, signer, sth_interval_seconds=0.05)
    try:
        assert log.sign_if_grown() is None  # empty log: nothing to sign
        log.append_many([event(i) for i in range(3)])
        deadline = time.monotonic() + 30
        while log.latest_signed_tree_head() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        sth = log.latest_signed_tree_head()
        assert sth is not None and sth.tree_size == 3
        assert log.sign_if_grown() is None  # no growth since: no new head
        log.append(event(3))
        grown = log.sign_if_grown()
        assert grown is not None and grown.tree_size == 4
    finally:
        log.close()
    count = len(log.signed_tree_heads())
    assert all(s.tree_size in (3, 4) for s in log.signed_tree_heads()) and count >= 2


def test_exported_proofs_verify_standalone(
    audit_log: AuditLog, signer: PrivateKeySigner, event
) -> None:
    pem = signer.public_key_pem()
    audit_log.append_many([event(i) for i in range(10)])
    old = audit_log.sign_tree_head()
    audit_log.append_many([event(i) for i in range(10, 25)])
    proof = audit_log.export_inclusion(17)  # not covered by the old head: signs a new one
    assert proof.sth is not None and proof.sth.tree_size == 25
    assert verify_inclusion(proof.to_dict(), None, pem).leaf_index == 17
    older = audit_log.export_inclusion(4, tree_size=6)  # tied to the newest head
    assert older.tree_size == 6 and older.consistency_path
    verify_inclusion(older.to_dict(), None, pem)
    cons = audit_log.export_consistency(10, 25)
    assert cons.first_sth == old
    verify_consistency(cons.to_dict(), None, None, pem)
    verify_consistency(cons.to_dict(), old.to_dict(), proof.sth.to_dict(), pem)


def test_export_refuses_when_the_log_no_longer_matches_its_head(
    audit_log: AuditLog, engine: Engine, event
) -> None:
    audit_log.append_many([event(i) for i in range(4)])
    audit_log.sign_tree_head()
    with engine.begin() as conn:  # the log's own tree data rewritten behind the head
        conn.execute(
            schema.entries.update().where(schema.entries.c.idx == 3)
            .values(subtree_hashes=bytes(64))
        )
    with pytest.raises(IntegrityError, match="tsuba audit verify"):
        audit_log.export_inclusion(0)


def test_old_key_versions_stay_trusted_for_old_heads(engine: Engine, event) -> None:
    old_key, new_key = PrivateKeySigner.generate(), PrivateKeySigner.generate()
    with AuditLog(engine, old_key) as log:
        log.append_many([event(i) for i in range(3)])
        log.sign_tree_head()
    with AuditLog(engine, new_key) as log:
        log.append(event(3))
        log.sign_tree_head()
        report = log.verify()
        assert not report.ok and "not a trusted audit key" in (report.problem or "")
    with AuditLog(engine, new_key, trusted_public_keys=[old_key.public_key_pem()]) as log:
        report = log.verify()
        assert report.ok and report.tree_heads_checked == 2
