"""``tsuba up`` as a real process, exercised over real HTTP with httpx."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import free_port, stop
from tsuba.core.audit.verify import verify_consistency, verify_inclusion, verify_tree_head
from tsuba.core.config import load_settings
from tsuba.core.errors import IntegrityError
from tsuba.core.events import EventClass, SecurityEvent
from tsuba.core.platform import Platform

ADMIN = "s3cret-admin-token-for-tests"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("srv") / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env.update(TSUBA_HOME=str(home), TSUBA_SERVER__ADMIN_TOKEN=ADMIN)
    env["TSUBA_AUDIT__STH_INTERVAL_SECONDS"] = "0.5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsuba.cli.main", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.stdout else ""
            proc.kill()
            pytest.fail(f"tsuba up did not start: {out}")
        time.sleep(0.2)
    try:
        yield base, home
    finally:
        stop(proc, 10)


def _append(home: Path, n: int) -> None:
    with Platform.open(load_settings(home)) as p:
        for i in range(n):
            p.record(
                SecurityEvent(event_class=EventClass.API_ACTIVITY, message=f"call {i}")
            )


def test_up_initialises_home_and_is_ready(server: tuple[str, Path]) -> None:
    base, home = server
    assert (home / "tsuba.toml").exists() and (home / "tsuba.db").exists()
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "keys": "ok", "audit": "ok"}


def test_metrics_count_requests_by_route(server: tuple[str, Path]) -> None:
    base, _ = server
    httpx.get(f"{base}/healthz")
    httpx.get(f"{base}/no/such/path")
    text = httpx.get(f"{base}/metrics").text
    assert 'tsuba_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    # unknown paths never become label values
    assert "/no/such/path" not in text


def test_openapi_is_the_contract(server: tuple[str, Path]) -> None:
    base, _ = server
    spec = httpx.get(f"{base}/openapi.json").json()
    for path in ("/healthz", "/readyz", "/metrics", "/v1/audit/tree-head",
                 "/v1/audit/proofs/inclusion/{index}", "/v1/audit/proofs/consistency"):
        assert path in spec["paths"]


def test_proofs_verify_with_only_the_public_key(server: tuple[str, Path]) -> None:
    base, home = server
    _append(home, 25)
    pem = httpx.get(f"{base}/v1/audit/public-key").text
    sth = httpx.get(f"{base}/v1/audit/tree-head").json()
    verified = verify_tree_head(sth, pem)
    assert verified.tree_size >= 25
    proof = httpx.get(f"{base}/v1/audit/proofs/inclusion/7").json()
    verify_inclusion(proof, None, pem)
    proof["entry"] = proof["entry"][:-4] + ("AAAA" if proof["entry"][-4:] != "AAAA" else "BBBB")
    with pytest.raises(IntegrityError):
        verify_inclusion(proof, None, pem)
    # An auditor holding an old head checks that the log only grew since.
    _append(home, 5)
    new_sth = httpx.get(f"{base}/v1/audit/tree-head").json()
    assert new_sth["tree_size"] == verified.tree_size + 5
    cons = httpx.get(
        f"{base}/v1/audit/proofs/consistency",
        params={"first": verified.tree_size, "second": new_sth["tree_size"]},
    ).json()
    verify_consistency(cons, sth, new_sth, pem)
    with pytest.raises(IntegrityError):
        verify_consistency(cons, sth, {**new_sth, "root_hash": sth["root_hash"]}, pem)


def test_bad_proof_requests_are_clear_400s(server: tuple[str, Path]) -> None:
    base, _ = server
    r = httpx.get(f"{base}/v1/audit/proofs/inclusion/999999")
    assert r.status_code == 400
    assert "outside the tree" in r.json()["error"]["message"]
    r = httpx.get(f"{base}/v1/audit/proofs/consistency", params={"first": 0})
    assert r.status_code == 422
    r = httpx.get(f"{base}/v1/audit/proofs/consistency", params={"first": 5, "second": 10**9})
    assert r.status_code == 400


def test_entries_need_the_admin_token(server: tuple[str, Path]) -> None:
    base, home = server
    _append(home, 3)
    assert httpx.get(f"{base}/v1/audit/entries").status_code == 403
    forged = httpx.get(f"{base}/v1/audit/entries", headers={"Authorization": "Bearer nope"})
    assert forged.status_code == 403
    ok = httpx.get(
        f"{base}/v1/audit/entries",
        params={"start": 0, "limit": 2},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert ok.status_code == 200
    body = ok.json()
    assert len(body["entries"]) == 2 and body["entries"][0]["index"] == 0
    assert all("class" in e["event"] for e in body["entries"])
    report = httpx.post(f"{base}/v1/audit/verify", headers={"Authorization": f"Bearer {ADMIN}"})
    assert report.json()["ok"] is True


def test_tree_heads_are_signed_on_schedule(server: tuple[str, Path]) -> None:
    _base, home = server
    _append(home, 2)
    with Platform.open(load_settings(home)) as p:
        size = p.audit.size()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            latest = p.audit.latest_signed_tree_head()
            if latest is not None and latest.tree_size == size:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no tree head was signed on schedule")


def test_first_start_records_the_keys_it_created(server: tuple[str, Path]) -> None:
    base, _ = server
    body = httpx.get(
        f"{base}/v1/audit/entries",
        params={"start": 0, "limit": 10},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()
    created = {
        e["event"].get("resource")
        for e in body["entries"]
        if e["event"]["class"] == "entity_management" and e["event"]["activity"] == "create"
    }
    assert {"key/audit-signing", "key/data"} <= created


def test_several_workers_report_the_response_loop_on_metrics(tmp_path: Path) -> None:
    """With two workers, /metrics is rendered from the workers' shared files; the incident
    and loop figures (which live in the database) are there too, and the loop is active."""
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env.update(TSUBA_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsuba.cli.main", "up", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        text = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                text = httpx.get(f"{base}/metrics", timeout=2).text
            except httpx.TransportError:
                text = ""
            if "tsuba_soar_loop_active 1.0" in text:
                break
            time.sleep(0.3)
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"tsuba up exited: {out}")
        assert "tsuba_soar_loop_active 1.0" in text
        assert "tsuba_soar_incidents " in text
        assert "tsuba_gateway_audit_failures_total" in text  # the workers' samples too
    finally:
        stop(proc, 15)
