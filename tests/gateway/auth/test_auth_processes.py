"""Revocation across processes: a warm verifier in another process refuses the next request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.gateway.auth import ApiKeyService

CHILD = Path(__file__).with_name("apikey_child.py")


def _ask(child: subprocess.Popen[str], line: str) -> dict[str, object]:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()
    answer = child.stdout.readline()
    assert answer, child.stderr.read() if child.stderr else "child exited"
    result: dict[str, object] = json.loads(answer)
    return result


def test_revoked_in_one_process_is_refused_by_the_other_on_its_next_request(
    service: ApiKeyService, keys: LocalKeyManager, master: MasterSecret, db_url: str
) -> None:
    issued = service.create("alice")
    kept = service.create("alice")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), db_url, str(keys.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TSUBA_TEST_MASTER_HEX": master.key.hex()},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for _ in range(3):  # warm: later answers come from the child's cache
            assert _ask(child, issued.key) == {"ok": True, "principal": "alice"}
        service.revoke(issued.record.prefix)  # committed before the next request is sent
        refused = _ask(child, issued.key)
        assert refused["ok"] is False and refused["reason"] == "revoked API key"
        assert _ask(child, kept.key)["ok"] is True  # other keys unaffected
        service.rotate(kept.record.prefix, grace=timedelta(0))
        assert _ask(child, kept.key)["ok"] is False
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert child.returncode == 0
