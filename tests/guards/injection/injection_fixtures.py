"""The hand-written held-out texts: never in training (a test checks), used to grade."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def load_heldout() -> list[dict[str, object]]:
    lines = (FIXTURES / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
