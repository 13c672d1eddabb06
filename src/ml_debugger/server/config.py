"""Settings of one server process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_PART_BYTES = 512 * 2**20


@dataclass(frozen=True)
class ServerConfig:
    """Where a server keeps its data and how much it accepts.

    Attributes:
        home: root of the store the server writes (Parquet parts, results, SQLite catalog).
        database_url: a ``postgresql://`` URL to keep the catalog (and API keys, jobs) in
            PostgreSQL instead of ``<home>/catalog.sqlite``.
        max_part_bytes: the largest part file upload accepted (larger ones get 413).
        local_only: no API keys: every request from a loopback address is let in and every
            other one refused (``mldebugger ui``: the dashboard on the embedded store).
    """

    home: Path
    database_url: str | None = None
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    local_only: bool = False
