"""Every published bypass in advisories/catalog.py is caught at its severity, under its own
file name and wrapped the ways attackers ship it (inside a PyTorch zip, gzip-compressed)."""

from __future__ import annotations

import gzip

import pytest
from advisories.catalog import CASES, Case
from scan_builders import torch_like_zip

from tsuba.models.scan import Severity, scan_bytes


def _ids(case: Case) -> str:
    return case.advisory


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_advisory_is_caught(case: Case) -> None:
    result = scan_bytes(case.build(), case.name)
    assert result.max_severity is not None and result.max_severity >= case.severity, (
        case.advisory, [f.to_dict() for f in result.findings])
    if case.rule:
        assert case.rule in {f.rule for f in result.findings}


PICKLE_CASES = [c for c in CASES if c.name in ("model.pkl", "model.bin")
                and c.severity is Severity.CRITICAL]


@pytest.mark.parametrize("case", PICKLE_CASES, ids=_ids)
def test_pickle_advisory_inside_a_torch_zip_and_gzip(case: Case) -> None:
    payload = case.build()
    in_zip = scan_bytes(torch_like_zip(payload), "pytorch_model.bin")
    assert in_zip.max_severity is Severity.CRITICAL
    assert all("!archive/data.pkl" in f.location for f in in_zip.findings
               if f.severity is Severity.CRITICAL)
    gz = scan_bytes(gzip.compress(payload), "model.joblib")
    assert gz.max_severity is Severity.CRITICAL
