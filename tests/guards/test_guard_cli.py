"""``tsuba guard`` through the real entry point: exit codes, formats, batches, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tsuba.cli import guard as guard_cli

SAMPLE = "Contact Olga Brandt at olga@example.net or +44 20 7946 0018.\n"


def test_pii_text_and_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "in.txt"
    path.write_text(SAMPLE)
    res = cli("guard", "pii", str(path), "--show")
    assert res.code == 1 and "EMAIL_ADDRESS" in res.stdout and "olga@example.net" in res.stdout
    res = cli("guard", "pii", str(path), "--format", "json")
    data = res.json()
    assert res.code == 1 and data["count"] == len(data["findings"]) >= 2
    assert all("text" not in f for f in data["findings"])  # values hidden unless --show
    assert cli("guard", "pii", "-", stdin="nothing personal here\n").code == 0


def test_secrets_and_entities(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("guard", "secrets", "-", "--format", "json",
              stdin="key AKIAIOSFODNN7EXAMPLE\n")
    assert res.code == 1 and res.json()["findings"][0]["recognizer"] == "aws_access_key_id"
    res = cli("guard", "entities", "--format", "json")
    assert "FR_NIR" in res.json() and "PERSON" in res.json()


def test_jsonl_batch(cli) -> None:  # type: ignore[no-untyped-def]
    lines = [json.dumps({"id": 1, "text": "mail ana@example.com"}), json.dumps("no pii"), ""]
    res = cli("guard", "pii", "--jsonl", stdin="\n".join(lines))
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.code == 1 and [r["line"] for r in rows] == [1, 2]
    assert rows[0]["findings"][0]["entity_type"] == "EMAIL_ADDRESS" and rows[1]["findings"] == []
    res = cli("guard", "redact", "--jsonl", stdin=lines[0])
    assert json.loads(res.stdout) == {"id": 1, "text": "mail <EMAIL_ADDRESS_1>"}


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json}\n", "line 1 is not JSON"),
        ('{"body": "x"}\n', "string 'text'"),
        ("[1, 2]\n", "line 1"),
    ],
)
def test_jsonl_bad_lines(cli, stdin: str, message: str) -> None:  # type: ignore[no-untyped-def]
    res = cli("guard", "pii", "--jsonl", stdin=stdin)
    assert res.code == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_invalid_utf8_and_missing_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"mail ana@example.com \xff\xfe end")
    res = cli("guard", "pii", str(bad))
    assert res.code == 2 and "not valid UTF-8 (byte 21)" in res.stderr
    res = cli("guard", "pii", str(bad), "--errors", "replace", "--format", "json")
    assert res.code == 1 and res.json()["findings"][0]["entity_type"] == "EMAIL_ADDRESS"
    res = cli("guard", "pii", str(tmp_path / "nope.txt"))
    assert res.code == 2 and "no such file" in res.stderr
    res = cli("guard", "pii", "-", "--entities", "NOPE", stdin="x")
    assert res.code == 2 and "unknown entity type" in res.stderr


def test_classify_and_redact(cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("guard", "classify", "-", "--format", "json", stdin=SAMPLE)
    assert res.code == 0 and res.json()["level"] == "Confidential"
    res = cli("guard", "classify", "-", "--fail-at", "confidential", stdin=SAMPLE)
    assert res.code == 1 and res.stdout.startswith("Confidential")
    res = cli("guard", "classify", "-", "--fail-at", "secretish", stdin=SAMPLE)
    assert res.code == 2 and "unknown classification level" in res.stderr
    res = cli("guard", "redact", "-", stdin=SAMPLE)
    assert res.code == 0 and "olga@example.net" not in res.stdout
    assert "<EMAIL_ADDRESS_1>" in res.stdout and "<PHONE_NUMBER_1>" in res.stdout
    res = cli("guard", "redact", "-", "-o", "mask", "--format", "json",
              stdin="card 4012 8888 8888 1881")
    assert res.json()["text"] == "card **** **** **** 1881"


def test_big_input_is_split_at_line_breaks_without_losing_offsets(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setattr(guard_cli, "CHUNK", 64)
    text = "".join(f"line {i} has nothing\n" if i % 7 else f"mail u{i}@example.com\n"
                   for i in range(200))
    path = tmp_path / "big.txt"
    path.write_text(text)
    res = cli("guard", "pii", str(path), "--format", "json", "--show")
    found = res.json()["findings"]
    assert len(found) == len([i for i in range(200) if i % 7 == 0])
    for f in found:
        assert text[f["start"] : f["end"]] == f["text"] and f["text"].endswith("@example.com")
