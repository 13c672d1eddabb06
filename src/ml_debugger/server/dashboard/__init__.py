"""The web dashboard: Home, Training, Evaluation and Compare pages, served under ``/dashboard``.

Server-rendered Jinja2 pages, htmx for the interactive parts (sample table, evaluation jobs) and
Plotly figures built in Python, drawn by the plotly.js bundle served from ``static/vendor`` (no
CDN: a page makes no request that leaves the server). Pages are driven by a result's tables, so a
task shows its own metrics, categories, codes and heatmaps without page code of its own.

On a keyed server the browser signs in with an API key (see `auth`); ``mldebugger ui`` runs a
``local_only`` server that lets loopback requests in without one. See docs/dashboard.md.
"""

from __future__ import annotations

import importlib.util

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

from ml_debugger.server.dashboard import auth, routes_data, routes_pages
from ml_debugger.server.dashboard.rendering import STATIC_DIR
from ml_debugger.server.dashboard.results import ResultReader

PREFIX = "/dashboard"

__all__ = ["PREFIX", "install"]


async def _root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, static files and sign-in handling to ``app`` (after its context is set)."""
    if importlib.util.find_spec("plotly") is None:
        raise ImportError("the dashboard needs plotly: pip install 'ml-debugger[server]'")
    auth.install(app)
    app.state.dashboard_results = ResultReader(app.state.context.store)
    app.add_api_route("/", _root, include_in_schema=False)
    app.include_router(auth.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(routes_pages.router, prefix=PREFIX, include_in_schema=False)
    app.include_router(routes_data.router, prefix=f"{PREFIX}/api", include_in_schema=False)
    app.mount(f"{PREFIX}/static", GZipMiddleware(StaticFiles(directory=STATIC_DIR), minimum_size=1024), name="static")
