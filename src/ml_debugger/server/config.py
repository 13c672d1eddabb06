"""Settings of one server process: where it keeps data and what it accepts (see docs/server.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml_debugger.exceptions import ConfigurationError

MiB = 2**20
DEFAULT_MAX_PART_BYTES = 512 * MiB
DEFAULT_MAX_PART_ROWS = 1_048_576  # 64 parts of the writer's default 16,384 rows
DEFAULT_MAX_DECODED_BYTES = 1024 * MiB
DEFAULT_MAX_JSON_BYTES = 4 * MiB
DEFAULT_MAX_COMMIT_PARTS = 10_000
DEFAULT_MAX_UPLOADS = 16
DEFAULT_MAX_CHECKS = 2
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MIN_BODY_RATE = 64 * 1024
DEFAULT_UNCOMMITTED_GRACE = 24 * 3600.0
INT32_MAX = 2**31 - 1
"""The largest epoch or rank: both are int32 columns."""


@dataclass(frozen=True)
class ServerConfig:
    """Where a server keeps its data and how much it accepts.

    Attributes:
        home: root of the store the server writes (Parquet parts, results, SQLite catalog).
        database_url: a ``postgresql://`` URL to keep the catalog (and API keys, jobs) in
            PostgreSQL instead of ``<home>/catalog.sqlite``.
        max_part_bytes: the largest part file upload accepted (larger ones get 413).
        max_part_rows: the most rows a part may hold (from its footer, before decoding; 413).
        max_decoded_bytes: the most bytes a part may decode to, estimated from its footer and
            dictionary pages before its values are decoded (413); parts are decoded one row group
            at a time, so one check holds at most this much.
        max_json_bytes: the largest JSON request body (413).
        max_commit_parts: the most parts one commit may name (413).
        max_uploads: part uploads received at once; more get 503 with ``Retry-After``.
        max_checks: uploaded parts decoded and checked at once (the others wait for a turn).
        body_timeout: seconds a request body may send nothing before it is refused (408).
        min_body_rate: bytes per second a body must average after its first ``body_timeout`` seconds (408).
        uncommitted_grace: seconds an uploaded part may stay uncommitted before it is removed.
        local_only: no API keys: every request from a loopback address is let in and every
            other one refused (``mldebugger ui``: the dashboard on the embedded store).
    """

    home: Path
    database_url: str | None = None
    max_part_bytes: int = DEFAULT_MAX_PART_BYTES
    max_part_rows: int = DEFAULT_MAX_PART_ROWS
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_commit_parts: int = DEFAULT_MAX_COMMIT_PARTS
    max_uploads: int = DEFAULT_MAX_UPLOADS
    max_checks: int = DEFAULT_MAX_CHECKS
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    min_body_rate: float = DEFAULT_MIN_BODY_RATE
    uncommitted_grace: float = DEFAULT_UNCOMMITTED_GRACE
    local_only: bool = False

    def __post_init__(self) -> None:
        for name in ("max_part_bytes", "max_part_rows", "max_decoded_bytes", "max_json_bytes", "max_commit_parts",
                     "max_uploads", "max_checks", "body_timeout", "uncommitted_grace"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"the server setting {name} must be positive; got {getattr(self, name)!r}")
        if self.min_body_rate < 0:
            raise ConfigurationError(f"the server setting min_body_rate must be >= 0; got {self.min_body_rate!r}")
