"""Settings read from the environment (the reference SDK's variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "MLD_HOME"
ENV_API_ENDPOINT = "MLD_API_ENDPOINT"
ENV_API_KEY = "MLD_API_KEY"
DEFAULT_HOME = "mldebugger"


@dataclass(frozen=True)
class Settings:
    """Where traces and results go.

    Attributes:
        home: root of the embedded store (``MLD_HOME``, default ``./mldebugger``).
        api_endpoint: base URL of an ml-debugger server (``MLD_API_ENDPOINT``), or ``None``.
        api_key: the key sent to that server (``MLD_API_KEY``), or ``None``.
    """

    home: Path
    api_endpoint: str | None
    api_key: str | None

    @property
    def is_remote(self) -> bool:
        return bool(self.api_endpoint)


def load_settings() -> Settings:
    """Read the settings from the environment as it is now."""
    return Settings(
        home=Path(os.environ.get(ENV_HOME) or DEFAULT_HOME),
        api_endpoint=os.environ.get(ENV_API_ENDPOINT) or None,
        api_key=os.environ.get(ENV_API_KEY) or None,
    )
