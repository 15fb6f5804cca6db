"""``tsuba up --demo`` as a real process, driven with the openai SDK as a newcomer would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from inference_support import free_port

from processes import stop


@pytest.fixture
def demo(home: Path, db_url: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    env["TSUBA_HOME"] = str(home)
    if not db_url.startswith("sqlite"):
        env["TSUBA_DATABASE_URL"] = db_url
        subprocess.run([sys.executable, "-m", "tsuba.cli.main", "init"], env=env, check=True,
                       capture_output=True)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsuba.cli.main", "up", "--demo", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline().decode()
        lines.append(line)
        if "Uvicorn running" in line or "Application startup complete" in line:
            break
        if (not line and proc.poll() is not None) or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("tsuba up --demo did not start:\n" + "".join(lines))
    output = "".join(lines)
    try:
        yield base, output, env
    finally:
        stop(proc, 15)


def test_newcomer_flow(demo: tuple[str, str, dict[str, str]]) -> None:
    base, output, env = demo
    assert "DEMO" in output and "not a real model" in output
    key = re.search(r"API key of principal 'demo':\s+(tsk_\S+)", output)
    assert key is not None, output
    assert f"curl {base}/v1/chat/completions" in output
    assert "from openai import OpenAI" in output

    client = openai.OpenAI(base_url=base + "/v1", api_key=key.group(1), max_retries=0)
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices[0].message.content == "[demo model demo] You said: Hello"

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base + "/v1", api_key="tsk_wrong", max_retries=0
                      ).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "Hello"}])
    missing = httpx.post(base + "/v1/chat/completions",
                         json={"model": "demo", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 401

    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(
            model="demo-restricted", messages=[{"role": "user", "content": "Hello"}])
    assert "model:invoke on model/demo-restricted" in str(denied.value)

    codes = []
    for _ in range(25):
        try:
            client.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "again"}])
            codes.append(200)
        except openai.RateLimitError:
            codes.append(429)
    assert codes.count(429) >= 5 and codes[0] == 200

    tail = subprocess.run(
        [sys.executable, "-m", "tsuba.cli.main", "audit", "tail", "-n", "200", "--format",
         "json"], env=env, capture_output=True, check=True, text=True,
    )
    events = [row["event"] for row in json.loads(tail.stdout)]
    gateway = [e for e in events if e.get("attributes", {}).get("route") == "chat"]
    statuses = {e["attributes"]["status"] for e in gateway}
    assert {200, 401, 403, 429} <= statuses
    assert all(e.get("correlation_id") for e in gateway)


def test_second_start_shows_the_same_key(
    home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tsuba.core.config import load_settings
    from tsuba.core.home import init_home
    from tsuba.core.identity import IdentityService
    from tsuba.core.platform import Platform
    from tsuba.gateway.auth import ApiKeyService
    from tsuba.gateway.auth.keyformat import parse_key
    from tsuba.gateway.demo import ensure_demo_principal

    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    init_home(home)
    with Platform.open(load_settings(home)) as platform:
        first = ensure_demo_principal(platform)
        second = ensure_demo_principal(platform)
        assert first.created and not second.created and first.key == second.key
        assert oct((home / "demo-api-key").stat().st_mode & 0o777) == "0o600"
        with IdentityService(platform.engine) as ids:
            assert ids.authorize("demo", "model:invoke", "model/demo").allowed
            assert not ids.authorize("demo", "model:invoke", "model/demo-restricted").allowed
        parsed = parse_key(first.key)
        assert parsed is not None
        ApiKeyService(platform.engine, platform.keys).revoke(parsed.prefix)
        third = ensure_demo_principal(platform)  # a revoked key is replaced, not shown again
        assert third.created and third.key != first.key
