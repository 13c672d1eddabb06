"""The ml-debugger server: an HTTP API over the embedded store, with API keys and evaluation jobs.

Needs the ``server`` extra (FastAPI, uvicorn); importing this package does not import them.
``create_app`` builds the ASGI app; ``mldebugger server`` runs it (see docs/server.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml_debugger.server.config import ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServerConfig", "create_app"]


def create_app(config: ServerConfig) -> FastAPI:
    """The server's ASGI app for ``config`` (imports FastAPI)."""
    try:
        from ml_debugger.server.app import build_app
    except ImportError as exc:
        raise ImportError(
            f"the ml-debugger server needs FastAPI and uvicorn ({exc}): pip install 'ml-debugger[server]'"
        ) from exc
    return build_app(config)
