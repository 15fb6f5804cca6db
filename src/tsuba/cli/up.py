"""``tsuba up``: serve on embedded defaults, creating the data directory on first start."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer
import uvicorn

from tsuba.cli.common import HomeOption, err, settings
from tsuba.cli.init import record_created_keys
from tsuba.core.home import ensure_home
from tsuba.core.storage import open_engine, upgrade
from tsuba.core.storage.migrate import require_current


def register(app: typer.Typer) -> None:
    app.command("up")(up)


def up(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Start the server (health, readiness, /metrics, audit API)."""
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
    n_workers = workers or cfg.server.workers
    if n_workers > 1:
        prom_dir = cfg.home.resolve() / "run" / "prometheus"
        shutil.rmtree(prom_dir, ignore_errors=True)
        prom_dir.mkdir(parents=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    bind_host = host or cfg.server.host
    bind_port = port or cfg.server.port
    err.print(f"tsuba serving on http://{_url_host(bind_host)}:{bind_port}", highlight=False)
    uvicorn.run(
        "tsuba.gateway.app:app_from_env",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=n_workers,
        log_level=cfg.log_level,
        timeout_keep_alive=5,
        server_header=False,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


