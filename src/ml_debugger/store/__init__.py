"""Stores of traces and results: the embedded local store, selected from the environment."""

from __future__ import annotations

from ml_debugger.config import Settings, load_settings
from ml_debugger.exceptions import ConfigurationError
from ml_debugger.store.base import PartInfo, PartKey, StoredResult, TraceStore
from ml_debugger.store.local import LocalStore

__all__ = ["LocalStore", "PartInfo", "PartKey", "StoredResult", "TraceStore", "open_store"]


def open_store(settings: Settings | None = None) -> TraceStore:
    """The store the environment selects: ``MLD_API_ENDPOINT`` for a server, else ``MLD_HOME``."""
    settings = settings or load_settings()
    if settings.is_remote:
        raise ConfigurationError(
            f"MLD_API_ENDPOINT is set ({settings.api_endpoint!r}) but this build of ml-debugger has no "
            "remote store yet; unset MLD_API_ENDPOINT to use the embedded store at MLD_HOME"
        )
    return LocalStore(settings.home)
