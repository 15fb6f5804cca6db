"""``tsuba audit`` through the real entry point, on an initialised data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tsuba.core.audit import schema
from tsuba.core.audit.verify import verify_consistency, verify_inclusion, verify_tree_head
from tsuba.core.config import load_settings
from tsuba.core.storage import open_engine

LINES = "\n".join(
    json.dumps(e)
    for e in [
        {"class": "api_activity", "message": "chat completion", "severity": "info",
         "model": "gpt-x"},
        {"class": "authentication", "message": "login failed", "severity": "high",
         "actor": "mallory", "outcome": "failure"},
        {"class": "detection_finding", "message": "prompt injection", "severity": "medium"},
    ]
)


@pytest.fixture
def ready(cli, home: Path) -> Path:
    res = cli("init")
    assert res.code == 0, res
    return home


def _size(cli) -> int:
    """Entries already in the log (``tsuba init`` records its key creations)."""
    res = cli("audit", "tail", "-n", "1", "--format", "json")
    assert res.code == 0, res
    rows = res.json()
    return rows[-1]["index"] + 1 if rows else 0


def _public_key(cli) -> bytes:
    res = cli("keys", "public", "audit-signing")
    assert res.code == 0, res
    return res.stdout.encode()


def _tamper(home: Path, **values: object) -> None:
    eng = open_engine(load_settings(home).sqlalchemy_url)
    with eng.begin() as conn:
        conn.execute(update(schema.entries).where(schema.entries.c.idx == 1).values(**values))
    eng.dispose()


def test_append_reports_count_and_range_and_tail_shows_events(cli, ready: Path) -> None:
    n = _size(cli)
    res = cli("audit", "append", stdin=LINES + "\n\n")
    assert res.code == 0, res
    assert res.stdout.strip() == f"appended 3 events: indices {n}..{n + 2}"
    res = cli("audit", "append", "--format", "json", stdin=LINES)
    assert res.json() == {"count": 3, "first_index": n + 3, "last_index": n + 5}
    tail = cli("audit", "tail", "-n", "4", "--format", "json")
    assert tail.code == 0, tail
    rows = tail.json()
    assert [r["index"] for r in rows] == [n + 2, n + 3, n + 4, n + 5]
    assert rows[1]["event"]["attributes"] == {"model": "gpt-x"}
    assert rows[2]["event"]["severity"] == "high" and rows[2]["event"]["actor"] == "mallory"
    text = cli("audit", "tail")
    assert text.code == 0 and "login failed" in text.stdout and "prompt injection" in text.stdout


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"class": "api_activity", "message": "x"', "not valid JSON"),
        ('{"class": "no_such_class", "message": "x"}', "class: Input should be"),
        ('{"class": "api_activity", "severity": "apocalyptic"}', "unknown severity"),
        ('["api_activity"]', "must be a JSON object"),
        ("42", "must be a JSON object"),
        ('{"message": "no class"}', "needs a 'class'"),
    ],
)
def test_a_bad_line_rejects_the_whole_input(cli, ready: Path, bad: str, message: str) -> None:
    lines = LINES.splitlines()
    n = _size(cli)
    res = cli("audit", "append", stdin="\n".join([lines[0], lines[1], bad, lines[2]]))
    assert res.code == 2, res
    assert res.stderr.startswith("error: line 3: ") and message in res.stderr
    assert "nothing was appended" in res.stderr and res.stderr.count("\n") == 1
    assert _size(cli) == n


def test_empty_input_appends_nothing(cli, ready: Path) -> None:
    res = cli("audit", "append", "-f", "json", stdin="")
    assert res.json() == {"count": 0, "first_index": None, "last_index": None}


def test_verify_passes_then_names_the_first_bad_index(cli, ready: Path) -> None:
    n = _size(cli)
    assert cli("audit", "append", stdin=LINES).code == 0
    assert cli("audit", "sth", "--sign").code == 0
    ok = cli("audit", "verify")
    assert ok.code == 0, ok
    assert ok.stdout.startswith(f"ok: {n + 3} entries verified, 1 signed tree head(s) checked")
    _tamper(ready, entry=b'{"class":"api_activity","message":"rewritten"}')
    bad = cli("audit", "verify")
    assert bad.code == 1, bad
    assert bad.stdout.startswith("first bad index 1: entry bytes do not match")
    data = cli("audit", "verify", "--format", "json")
    assert data.code == 1
    assert data.json()["ok"] is False and data.json()["first_bad_index"] == 1


def test_proof_exports_json_that_verifies_with_only_the_public_key(cli, ready: Path) -> None:
    n = _size(cli)
    assert cli("audit", "append", stdin=LINES).code == 0
    res = cli("audit", "proof", "1", "--format", "json")
    assert res.code == 0, res
    proof = res.json()
    assert proof["format"] == "tsuba-audit-inclusion/v1" and proof["tree_size"] == n + 3
    pem = _public_key(cli)
    assert verify_inclusion(res.stdout, None, pem).leaf_index == 1
    assert cli("audit", "append", stdin=LINES).code == 0
    old = cli("audit", "proof", "0", "--size", "2", "-f", "json")
    assert old.code == 0, old
    assert old.json()["tree_size"] == 2
    verify_inclusion(old.stdout, None, pem)
    text = cli("audit", "proof", "0")
    assert text.code == 0 and "inclusion_path" in text.stdout


def test_proof_of_a_missing_entry_is_a_usage_error(cli, ready: Path) -> None:
    n = _size(cli)
    assert cli("audit", "append", stdin=LINES).code == 0
    res = cli("audit", "proof", str(n + 7))
    assert res.code == 2 and f"entry {n + 7} is not in a log of {n + 3}" in res.stderr


def test_sth_and_consistency_verify_standalone(cli, ready: Path) -> None:
    none = cli("audit", "sth")
    assert none.code == 2 and "tsuba audit sth --sign" in none.stderr
    n = _size(cli)
    assert cli("audit", "append", stdin=LINES).code == 0
    first = cli("audit", "sth", "--sign", "--format", "json")
    assert first.code == 0, first
    assert cli("audit", "append", stdin=LINES).code == 0
    second = cli("audit", "sth", "--sign", "--format", "json")
    pem = _public_key(cli)
    assert verify_tree_head(second.stdout, pem).tree_size == n + 6
    shown = cli("audit", "sth")
    assert shown.code == 0 and f"tree_size  {n + 6}" in shown.stdout
    cons = cli("audit", "consistency", str(n + 3), str(n + 6), "--format", "json")
    assert cons.code == 0, cons
    verify_consistency(cons.stdout, first.stdout, second.stdout, pem)
    verify_consistency(cons.stdout, None, None, pem)
    backwards = cli("audit", "consistency", "6", "3")
    assert backwards.code == 2 and "must not exceed" in backwards.stderr


def test_forged_stored_head_is_an_integrity_failure(cli, ready: Path) -> None:
    assert cli("audit", "append", stdin=LINES).code == 0
    assert cli("audit", "sth", "--sign").code == 0
    eng = open_engine(load_settings(ready).sqlalchemy_url)
    with eng.begin() as conn:
        t = schema.tree_heads
        sig = bytes(conn.execute(select(t.c.signature)).scalar_one())
        conn.execute(update(t).values(signature=bytes([sig[0] ^ 1]) + sig[1:]))
    eng.dispose()
    res = cli("audit", "sth")
    assert res.code == 1 and "signature does not verify" in res.stderr
    ver = cli("audit", "verify")
    assert ver.code == 1 and ver.stdout.startswith("verification failed: signed tree head")


def test_without_a_data_directory_the_fix_is_named(cli, home: Path) -> None:
    res = cli("audit", "tail")
    assert res.code == 2 and "tsuba init" in res.stderr
