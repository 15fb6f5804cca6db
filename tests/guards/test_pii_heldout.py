"""The held-out PII set (bench/pii_heldout.py) is the same documents on every day and zone.

Scores on it are compared across runs, so a date drawn relative to the machine's clock
would move the set under the detector.  The clock Faker reads is shifted here (Faker is a
library we do not control, so patching its clock is the only way to test another day).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("faker")
import faker.providers.date_time as faker_dates

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import pii_heldout


def _shifted(days: int) -> tuple[type[datetime], type[date]]:
    class Later(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return datetime.now(tz) + timedelta(days=days)

    class LaterDate(date):
        @classmethod
        def today(cls):  # type: ignore[no-untyped-def, override]
            return date.today() + timedelta(days=days)

    return Later, LaterDate


@pytest.fixture
def zone() -> Iterator[None]:
    before = os.environ.get("TZ")
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


SMALL = {"per_locale": 12, "negatives": 40}


def test_same_documents_on_another_day_and_zone(
    monkeypatch: pytest.MonkeyPatch, zone: None
) -> None:
    today = pii_heldout.generate(**SMALL)
    later, later_date = _shifted(400)
    monkeypatch.setattr(faker_dates, "datetime", later)
    monkeypatch.setattr(faker_dates, "dtdate", later_date)
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    assert pii_heldout.generate(**SMALL) == today


def test_dates_fall_before_the_reference_day() -> None:
    docs = pii_heldout.generate(**SMALL)
    born = [d.text[s:e] for d in docs for s, e, t in d.spans if t == "DATE_TIME"]
    assert born
    years = [int(next(p for p in v.replace("/", ".").replace("-", ".").split(".") if len(p) == 4))
             for v in born]
    assert all(pii_heldout.REFERENCE.year - 115 <= y <= pii_heldout.REFERENCE.year for y in years)
    negatives = [d.text for d in docs if d.kind == "negative"]
    assert negatives and not any(str(pii_heldout.REFERENCE.year + 1) in t[:4] for t in negatives)
