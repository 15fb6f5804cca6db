"""``tsuba up``: serve on embedded defaults, creating the data directory on first start."""

from __future__ import annotations

import os
import shutil
import signal
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn

from tsuba.cli.common import HomeOption, err, out, settings
from tsuba.cli.init import record_created_keys
from tsuba.core.config import Settings, load_settings
from tsuba.core.home import ensure_home
from tsuba.core.platform import Platform
from tsuba.core.storage import open_engine, upgrade
from tsuba.core.storage.migrate import require_current
from tsuba.gateway.demo import (
    DemoServer,
    demo_environment,
    demo_instructions,
    ensure_demo_principal,
)
from tsuba.gateway.serving import PROTOCOL

if TYPE_CHECKING:
    from tsuba.soar.service import ResponseService


def register(app: typer.Typer) -> None:
    app.command("up")(up)


def up(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also start a built-in DEMO upstream (models 'demo', 'demo-restricted') and "
            "print an API key of principal 'demo' to try the gateway with.",
        ),
    ] = False,
) -> None:
    """Start the server: inference gateway, health, readiness, /metrics, audit API, and the
    response loop (detections, incidents, playbooks, SIEM export) unless soar.enabled is off."""
    cfg = settings(home)
    result = ensure_home(cfg)
    if result.created:
        record_created_keys(result)
        err.print(f"initialised data directory {cfg.home.resolve()}", highlight=False)
    engine = open_engine(cfg.sqlalchemy_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)  # embedded: migrate in place
    else:
        require_current(engine)  # shared database: migrations are an explicit step
    engine.dispose()

    os.environ["TSUBA_HOME"] = str(cfg.home.resolve())
    demo_server = _start_demo() if demo else None
    if demo:
        cfg = load_settings(cfg.home)  # now with the demo upstream, models and limits
    if cfg.audit.durability == "async":
        err.print(
            "audit.durability is 'async': a request's audit record is committed just after "
            "its response, and is lost if the process dies in between",
            highlight=False,
        )
    n_workers = workers or cfg.server.workers
    if n_workers > 1:
        prom_dir = cfg.home.resolve() / "run" / "prometheus"
        shutil.rmtree(prom_dir, ignore_errors=True)
        prom_dir.mkdir(parents=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    bind_host = host or cfg.server.host
    bind_port = port or cfg.server.port
    base_url = f"http://{_url_host(_client_host(bind_host))}:{bind_port}"
    if demo:
        with Platform.open(cfg) as platform:
            access = ensure_demo_principal(platform)
        out.print(demo_instructions(base_url, access.key), highlight=False, markup=False)
    loop: ResponseService | None = None
    # uvicorn re-raises SIGTERM once it has shut down; exiting through Python instead of the
    # default action lets the response loop hand its lease back to a standby at once.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        loop = _start_response_loop(cfg) if cfg.soar.enabled else None
        err.print(f"tsuba serving on http://{_url_host(bind_host)}:{bind_port}",
                  highlight=False)
        uvicorn.run(
            "tsuba.gateway.app:app_from_env",
            factory=True,
            host=bind_host,
            port=bind_port,
            workers=n_workers,
            log_level=cfg.log_level,
            timeout_keep_alive=5,
            server_header=False,
            http=PROTOCOL,
            # Every request is in the audit log and the metrics already; a line per request
            # on stdout as well costs time on the hot path.
            access_log=cfg.log_level == "debug",
        )
    finally:
        if loop is not None:
            loop.stop()
            loop.platform.close()
        if demo_server is not None:
            demo_server.stop()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_response_loop(cfg: Settings) -> ResponseService:
    """The loop runs in this (parent) process, once whatever the number of workers; a bad
    rule file, playbook or sink stops the start here, before anything is served."""
    from tsuba.soar.service import ResponseService  # noqa: PLC0415 - only for `up`

    platform = Platform.open(cfg)
    try:
        loop = ResponseService(platform).start()
    except BaseException:
        platform.close()
        raise
    err.print(f"response loop {loop.holder}: active once it holds the lease (one per database)",
              highlight=False)
    return loop


def _start_demo() -> DemoServer:
    server = DemoServer().start()
    os.environ.update(demo_environment(server.port))
    err.print(
        f"DEMO upstream (canned answers, not a model) on http://127.0.0.1:{server.port}/v1",
        highlight=False,
    )
    return server


def _client_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - a lookup


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


