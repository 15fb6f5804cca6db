"""Real processes: concurrent appenders, and ``kill -9`` in the middle of a burst."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tsuba.core.audit import AuditLog
from tsuba.core.storage import open_engine, upgrade

HELPER = Path(__file__).with_name("audit_appender.py")


@pytest.fixture
def migrated_url(db_url: str) -> str:
    eng = open_engine(db_url)
    upgrade(eng)
    eng.dispose()
    return db_url


def _spawn(url: str, count: int, threads: int, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), url, str(count), str(threads), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _acks(text: str) -> dict[int, tuple[str, str]]:
    """index -> (leaf hash hex, tag), from complete lines only."""
    out: dict[int, tuple[str, str]] = {}
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # cut off by the kill: never fully acknowledged
        index, leaf, tag = line.split()
        assert int(index) not in out, f"index {index} acknowledged twice"
        out[int(index)] = (leaf, tag)
    return out


def _check_log(url: str, acks: dict[int, tuple[str, str]]) -> int:
    eng = open_engine(url)
    try:
        log = AuditLog(eng)
        report = log.verify()
        assert report.ok, report
        size = log.size()
        stored = {e.index: e for e in log.entries(0, size)}
        for index, (leaf, tag) in acks.items():
            assert index in stored, f"acknowledged entry {index} is gone"
            assert stored[index].leaf_hash.hex() == leaf
            assert stored[index].event().actor == tag
        log.close()
        return size
    finally:
        eng.dispose()


def test_two_processes_appending_at_once_both_succeed(migrated_url: str) -> None:
    procs = [_spawn(migrated_url, 500, 4, tag) for tag in ("alpha", "beta")]
    results = [p.communicate(timeout=280) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    acks: dict[int, tuple[str, str]] = {}
    for out, _ in results:
        part = _acks(out)
        assert len(part) == 500
        assert not acks.keys() & part.keys()
        acks.update(part)
    assert sorted(acks) == list(range(1000))
    assert _check_log(migrated_url, acks) == 1000


def test_kill_9_mid_burst_keeps_every_acknowledged_entry(migrated_url: str) -> None:
    proc = _spawn(migrated_url, 10_000_000, 4, "burst")
    assert proc.stdout is not None
    seen = []
    while len(seen) < 300:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"appender stopped early: {proc.stderr.read() if proc.stderr else ''}")
        seen.append(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    seen.append(proc.stdout.read())  # lines written before the kill are acknowledged too
    acks = _acks("".join(seen))
    assert len(acks) >= 300
    size = _check_log(migrated_url, acks)
    assert size >= max(acks) + 1

    # The log is usable afterwards: a new process appends on top, and all still verifies.
    after = _spawn(migrated_url, 50, 2, "after")
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    more = _acks(out)
    assert sorted(more) == list(range(size, size + 50))
    assert _check_log(migrated_url, {**acks, **more}) == size + 50
