"""Two gateway processes sharing one real Redis: a global limit and a token budget hold
exactly under 200 concurrent requests, with zero overshoot."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inference_support import chat_body, free_port

from tsuba.core.config import load_settings
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.platform import Platform
from tsuba.gateway.auth import create_api_key

REDIS_URL = os.environ.get("TSUBA_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="Redis not configured (TSUBA_TEST_REDIS_URL)"),
]

Start = Callable[[dict[str, Any]], tuple[list[str], str]]


@pytest.fixture
def two_gateways(
    home: Path, db_url: str, demo_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Start]:
    """``start(total_limits)`` -> (two base URLs, an API key), both gateways on one Redis."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(total: dict[str, Any]) -> tuple[list[str], str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
        env["TSUBA_HOME"] = str(home)
        if not db_url.startswith("sqlite"):
            env["TSUBA_DATABASE_URL"] = db_url
            monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
        init_home(home)
        with Platform.open(load_settings(home)) as platform:
            with IdentityService(platform.engine) as ids:
                ids.create_principal("load", "service")
                ids.create_role("invoker")
                ids.add_permission("invoker", "model:invoke", "model/demo")
                ids.bind("invoker", "load")
            key, _ = create_api_key(platform.engine, "load", keys=platform.keys)
        host = demo_upstream.split("//", 1)[1].split("/", 1)[0]
        env.update({
            "TSUBA_GATEWAY__UPSTREAMS": json.dumps({"demo": {"base_url": demo_upstream}}),
            "TSUBA_GATEWAY__MODELS": json.dumps({"demo": {"upstream": "demo"}}),
            "TSUBA_GATEWAY__ALLOWED_UPSTREAM_HOSTS": json.dumps([host]),
            "TSUBA_GATEWAY__LIMITS__BACKEND": "redis",
            "TSUBA_GATEWAY__LIMITS__REDIS_URL": REDIS_URL or "",
            "TSUBA_GATEWAY__LIMITS__KEY_PREFIX": "{tsuba:t" + uuid.uuid4().hex[:12] + "}:",
            "TSUBA_GATEWAY__LIMITS__PRINCIPAL_DEFAULTS": "{}",
            "TSUBA_GATEWAY__LIMITS__TOTAL": json.dumps(total),
        })
        urls = []
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "tsuba.cli.main", "up", "--port", str(port)],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("gateways did not start")
                time.sleep(0.1)
        return urls, key

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def fire(urls: list[str], key: str, n: int, body: dict[str, Any]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            return await asyncio.gather(*[
                client.post(urls[i % 2] + "/v1/chat/completions", json=body,
                            headers={"authorization": f"Bearer {key}"})
                for i in range(n)
            ])

    return asyncio.run(main())


def test_global_request_limit_holds_across_processes(two_gateways: Start) -> None:
    urls, key = two_gateways({"requests": 50, "interval_seconds": 3600})
    replies = fire(urls, key, 200, chat_body())
    codes = [r.status_code for r in replies]
    assert codes.count(200) == 50 and codes.count(429) == 150
    # Each process got 100 requests and would admit 50 on its own: 50 in all means the
    # limit is shared, not per process.
    per_port = {port: sum(1 for r in replies if r.url.port == port)
                for port in {r.url.port for r in replies}}
    assert sorted(per_port.values()) == [100, 100]


def test_token_budget_is_never_overshot(two_gateways: Start) -> None:
    budget = 2000
    urls, key = two_gateways({"tokens_per_day": budget})
    replies = fire(urls, key, 200, chat_body("count these words please", max_tokens=30))
    ok = [r for r in replies if r.status_code == 200]
    assert ok and len(ok) < 200
    assert all(r.status_code in (200, 429) for r in replies)
    spent = sum(r.json()["usage"]["total_tokens"] for r in ok)
    assert spent <= budget
    # Reserve-then-settle refunds what the estimates overstated, so the budget is nearly used.
    reserve = 24 // 4 + 1 + 30
    assert spent + reserve > budget * 0.5
