"""The FastAPI app: routes under /api/v1, API keys on every route but health, JSON errors."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from ml_debugger._version import __version__
from ml_debugger.server import dashboard, routes_catalog, routes_compare, routes_results, routes_traces
from ml_debugger.server.config import ServerConfig
from ml_debugger.server.context import ServerContext, require_key
from ml_debugger.server.errors import install_error_handlers
from ml_debugger.server.jobs import JobRunner
from ml_debugger.server.keys import KeyRing
from ml_debugger.store.local import LocalStore

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
health = APIRouter()


@health.get("/health", summary="Liveness; the only route that needs no API key")
def get_health() -> dict:
    return {"status": "ok", "version": __version__}


def build_app(config: ServerConfig) -> FastAPI:
    """The app serving ``config.home`` (see ``ml_debugger.server.create_app``)."""
    store = LocalStore(config.home, database_url=config.database_url)
    uploads = store.root / "tmp" / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)  # bodies half-received by a previous process
    uploads.mkdir(parents=True)
    ctx = ServerContext(config=config, store=store, keys=KeyRing(store.catalog), jobs=JobRunner(store), uploads=uploads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx.jobs.start()
        logger.info("ml-debugger server on %s (catalog %s)", store.root, store.catalog)
        yield
        ctx.jobs.stop()

    app = FastAPI(
        title="ml-debugger", version=__version__, lifespan=lifespan,
        description="Upload per-sample traces, run evaluations as jobs, read results. "
        "Every route but /api/v1/health needs `Authorization: Bearer mldbg_...`.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs", redoc_url=None,
    )
    app.state.context = ctx
    install_error_handlers(app)
    app.include_router(health, prefix=API_PREFIX, tags=["health"])
    secured = [Depends(require_key)]
    app.include_router(routes_traces.router, prefix=API_PREFIX, dependencies=secured, tags=["traces"])
    app.include_router(routes_results.router, prefix=API_PREFIX, dependencies=secured, tags=["results"])
    app.include_router(routes_compare.router, prefix=API_PREFIX, dependencies=secured, tags=["results"])
    app.include_router(routes_catalog.router, prefix=API_PREFIX, dependencies=secured, tags=["models"])
    dashboard.install(app)
    return app
