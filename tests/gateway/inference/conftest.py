"""Fixtures for the inference gateway: a real demo upstream over HTTP, and the real gateway
(API keys, authorization, limits, audit) served by uvicorn on a free port, on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inference_support import ServerThread, Stack, StackFactory, gateway_config

from tsuba.core.config import load_settings
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.platform import Platform
from tsuba.gateway.app import create_app
from tsuba.gateway.auth import create_api_key
from tsuba.gateway.demo import DemoUpstream


@pytest.fixture(scope="session")
def demo_upstream() -> Iterator[str]:
    """The demo upstream's base URL (…/v1), shared by the whole session."""
    server = ServerThread(DemoUpstream()).start()
    yield server.url + "/v1"
    server.stop()


@pytest.fixture
def make_stack(
    home: Path, db_url: str, demo_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StackFactory]:
    """Build and start a gateway: ``make_stack(gateway={...}, audit={...}, limits={...})``.

    Principals: ``alice`` may invoke ``demo`` and ``tabular``; ``bob`` may invoke ``model/*``;
    ``carol`` exists with no role.  Each gets an API key (``stack.keys[name]``).
    """
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    init_home(home)
    started: list[tuple[ServerThread, Platform]] = []

    def build(
        *,
        gateway: dict[str, Any] | None = None,
        audit: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
        upstream_url: str | None = None,
        authenticator: Any = None,
        limiter: Any = None,
        **server: Any,
    ) -> Stack:
        gw = gateway_config(upstream_url or demo_upstream, **(gateway or {}))
        if limits is not None:
            gw["limits"] = limits
        overrides: dict[str, Any] = {"gateway": gw}
        if audit:
            overrides["audit"] = audit
        settings = load_settings(home, **overrides)
        platform = Platform.open(settings, background=False)
        keys: dict[str, str] = {}
        with IdentityService(platform.engine, actor="test") as ids:
            existing = {p.name for p in ids.list_principals()}
            if "alice" not in existing:
                for name in ("alice", "bob", "carol"):
                    ids.create_principal(name, "user")
                ids.create_role("demo-user")
                ids.add_permission("demo-user", "model:invoke", "model/demo")
                ids.add_permission("demo-user", "model:invoke", "model/tabular")
                ids.create_role("model-admin")
                ids.add_permission("model-admin", "model:invoke", "model/*")
                ids.bind("demo-user", "alice")
                ids.bind("model-admin", "bob")
        for name in ("alice", "bob", "carol"):
            keys[name], _record = create_api_key(platform.engine, name, keys=platform.keys)
        app = create_app(settings, platform, authenticator=authenticator, limiter=limiter)
        thread = ServerThread(app, **server).start()
        started.append((thread, platform))
        stack = Stack(thread.url, settings, platform, keys)
        stack.port = thread.port
        return stack

    yield build
    for server, platform in reversed(started):
        server.stop()
        platform.close()


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    return make_stack()
