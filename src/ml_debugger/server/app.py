"""The FastAPI app: routes under /api/v1, API keys on every route but health, JSON errors, request limits."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ml_debugger._version import __version__
from ml_debugger.server import dashboard, routes_catalog, routes_compare, routes_results, routes_traces
from ml_debugger.server.bodies import JsonBodyLimit, UploadSlots
from ml_debugger.server.config import ServerConfig
from ml_debugger.server.context import ServerContext, context, require_key
from ml_debugger.server.errors import install_error_handlers
from ml_debugger.server.janitor import Janitor
from ml_debugger.server.jobs import JobRunner
from ml_debugger.server.keys import KeyRing
from ml_debugger.server.logs import rate_limit_server_logs
from ml_debugger.store.local import LocalStore

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
health = APIRouter()


@health.get("/health", summary="Liveness and the evaluation worker's state; the only route that needs no API key")
def get_health(request: Request) -> JSONResponse:
    """200 ``{"status": "ok"}`` while an evaluation worker runs; 503 ``{"status": "degraded"}`` when none does."""
    jobs = context(request).jobs
    healthy = jobs.healthy
    body = {"status": "ok" if healthy else "degraded", "version": __version__, "evaluations": jobs.status()}
    return JSONResponse(body, status_code=200 if healthy else 503)


def build_app(config: ServerConfig) -> FastAPI:
    """The app serving ``config.home`` (see ``ml_debugger.server.create_app``)."""
    store = LocalStore(config.home, database_url=config.database_url)
    uploads = store.root / "tmp" / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)  # bodies half-received by a previous process
    uploads.mkdir(parents=True)
    ctx = ServerContext(
        config=config, store=store, keys=KeyRing(store.catalog), jobs=JobRunner(store), uploads=uploads,
        upload_slots=UploadSlots(config.max_uploads), checks=threading.BoundedSemaphore(config.max_checks),
    )
    janitor = Janitor(store, ctx.part_lock, config.uncommitted_grace)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rate_limit_server_logs()
        ctx.jobs.start()
        janitor.start()
        logger.info("ml-debugger server on %s (catalog %s)", store.root, store.catalog)
        yield
        janitor.stop()
        ctx.jobs.stop()

    app = FastAPI(
        title="ml-debugger", version=__version__, lifespan=lifespan,
        description="Upload per-sample traces, run evaluations as jobs, read results. "
        "Every route but /api/v1/health needs `Authorization: Bearer mldbg_...`.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
    )
    app.state.context = ctx
    install_error_handlers(app)
    app.add_middleware(JsonBodyLimit, max_bytes=config.max_json_bytes, limits=ctx.body_limits)
    app.include_router(health, prefix=API_PREFIX, tags=["health"])
    secured = [Depends(require_key)]
    app.include_router(routes_traces.router, prefix=API_PREFIX, dependencies=secured, tags=["traces"])
    app.include_router(routes_results.router, prefix=API_PREFIX, dependencies=secured, tags=["results"])
    app.include_router(routes_compare.router, prefix=API_PREFIX, dependencies=secured, tags=["results"])
    app.include_router(routes_catalog.router, prefix=API_PREFIX, dependencies=secured, tags=["models"])
    dashboard.install(app)
    return app
