"""Stores of traces and results: the embedded local store or a server, selected from the environment."""

from __future__ import annotations

from ml_debugger.config import Settings, load_settings
from ml_debugger.store.base import EvaluationRequest, PartInfo, PartKey, StoredResult, TraceStore
from ml_debugger.store.local import LocalStore

__all__ = ["EvaluationRequest", "LocalStore", "PartInfo", "PartKey", "StoredResult", "TraceStore", "open_store"]


def open_store(settings: Settings | None = None) -> TraceStore:
    """The store the environment selects: ``MLD_API_ENDPOINT`` for a server, else ``MLD_HOME``."""
    settings = settings or load_settings()
    if settings.is_remote:
        try:
            from ml_debugger.store.remote import RemoteStore
        except ImportError as exc:
            raise ImportError(
                f"MLD_API_ENDPOINT is set, and talking to a server needs httpx ({exc}): "
                "pip install 'ml-debugger[server]'"
            ) from exc
        return RemoteStore.from_settings(settings)
    return LocalStore(settings.home)
