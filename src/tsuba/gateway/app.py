"""The ASGI application ``tsuba up`` serves: inference gateway, health, readiness, metrics,
audit API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tsuba import __version__
from tsuba.core.config import Settings, load_settings
from tsuba.core.errors import TsubaError
from tsuba.core.platform import Platform
from tsuba.core.storage.migrate import require_current
from tsuba.gateway import inference, maintenance, metrics
from tsuba.gateway.audit_api import router as audit_router
from tsuba.gateway.context import Authenticator, Limiter
from tsuba.gateway.errors import tsuba_error_handler
from tsuba.gateway.pipeline import Gateway
from tsuba.soar.ingest_api import router as soar_ingest_router


class MetricsMiddleware:
    """Counts and times requests by route template (never by raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            metrics.HTTP_REQUESTS.labels(scope["method"], name, str(status["code"])).inc()
            metrics.HTTP_LATENCY.labels(name).observe(time.perf_counter() - start)


def create_app(
    settings: Settings | None = None,
    platform: Platform | None = None,
    *,
    authenticator: Authenticator | None = None,
    limiter: Limiter | None = None,
) -> FastAPI:
    """Build the app; it opens (and closes) a Platform unless one is handed in.

    The gateway's authenticator and limiter come from settings unless handed in.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = platform is None
        app.state.platform = platform or Platform.open(settings or load_settings(), background=True)
        chores: asyncio.Task[None] | None = None
        try:
            app.state.gateway = Gateway(
                app.state.platform, authenticator=authenticator, limiter=limiter
            )
            chores = asyncio.create_task(maintenance.run(app.state.gateway))
            _share_soar_metrics(app.state.platform)
            yield
        finally:
            if chores is not None:
                chores.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chores
            gateway: Gateway | None = getattr(app.state, "gateway", None)
            if gateway is not None:
                await gateway.aclose()
            if owned:
                app.state.platform.close()

    app = FastAPI(
        title="tsuba",
        version=__version__,
        summary="AI security platform layer",
        lifespan=lifespan,
    )
    app.add_exception_handler(TsubaError, tsuba_error_handler)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(inference.FastPath)  # outermost: inference skips the framework stack
    app.include_router(audit_router)
    app.include_router(soar_ingest_router)
    app.router.routes.extend(inference.routes())
    _describe_inference(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request) -> Response:
        """Readiness: storage, schema, key store and audit log all usable; 503 otherwise."""
        p: Platform = request.app.state.platform
        checks: dict[str, Any] = {}
        for name, check in (
            ("database", lambda: require_current(p.engine)),
            ("keys", lambda: p.keys.public_key_pem(p.settings.audit.signing_key)),
            ("audit", p.audit.size),
        ):
            try:
                check()
                checks[name] = "ok"
            except TsubaError as exc:
                checks[name] = exc.message
                metrics.READY_FAILURES.labels(name).inc()
            except Exception as exc:  # readiness reports, never raises
                checks[name] = f"{type(exc).__name__}: {exc}"
                metrics.READY_FAILURES.labels(name).inc()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["ops"], include_in_schema=True)
    def prometheus() -> Response:
        """Prometheus text exposition."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


def _share_soar_metrics(platform: Platform) -> None:
    """With several workers, each renders the incident and loop figures from the database."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or not platform.settings.soar.enabled:
        return
    from tsuba.soar.metrics import SoarCollector, compute_metrics  # noqa: PLC0415
    from tsuba.soar.service import LoopCollector  # noqa: PLC0415

    engine = platform.engine
    metrics.share_collectors([SoarCollector(lambda: compute_metrics(engine), ttl=15.0),
                              LoopCollector(engine)])


def _describe_inference(app: FastAPI) -> None:
    """Add the ASGI-level inference routes to the generated OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            paths, schemas = inference.openapi_paths()
            schema.setdefault("paths", {}).update(paths)
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(schemas)
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "API key (tsk_...) or JWT",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (``--factory``): settings come from TSUBA_* variables."""
    return create_app(load_settings())
