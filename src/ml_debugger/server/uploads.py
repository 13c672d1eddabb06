"""Receiving part files: stream the body to a temporary file (size-limited), read and check it.

A body is a Parquet file or an Arrow IPC file or stream, recognised by its magic bytes. Checks:
the declared size and SHA-256 (``X-Content-SHA256``) and row count (``rows``) when the client
sends them, readability (truncated or corrupt -> 400), the task's trace schema (column types,
nulls and value ranges, see ``ml_debugger.tasks``), and partition columns equal to the URL's (-> 422).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from fastapi import Request

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.server.errors import ApiProblem
from ml_debugger.store.base import PartKey
from ml_debugger.tasks import get_task

_DISCARD_FACTOR = 4  # an oversized body is read (and dropped) up to this many limits, so the client sees the 413


async def _discard(request: Request, limit: int) -> None:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            return


def _too_large(size: str, max_bytes: int) -> ApiProblem:
    return ApiProblem(
        413, "RemoteError", f"the part file is {size} bytes; this server accepts at most {max_bytes} bytes per part"
    )


async def receive_body(request: Request, directory: Path, max_bytes: int) -> Path:
    """Stream the request body into a new file in ``directory``; 413 past ``max_bytes``; 400 on a bad checksum."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        await _discard(request, _DISCARD_FACTOR * max_bytes)
        raise _too_large(declared, max_bytes)
    fd, name = tempfile.mkstemp(dir=directory, suffix=".upload")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    await _discard(request, _DISCARD_FACTOR * max_bytes)
                    raise _too_large(f"more than {max_bytes}", max_bytes)
                digest.update(chunk)
                out.write(chunk)
        expected = request.headers.get("x-content-sha256")
        if expected is not None and expected.lower() != digest.hexdigest():
            raise ApiProblem(
                400, "RemoteError",
                f"the body's SHA-256 is {digest.hexdigest()}, not {expected} as sent: it was truncated or corrupted",
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def read_part(path: Path) -> tuple[pa.Table, bool]:
    """The table in a Parquet or Arrow IPC file and whether it is Parquet; 400 when it is neither or is unreadable."""
    with path.open("rb") as f:
        head = f.read(8)
    try:
        if head[:4] == b"PAR1":
            return pq.read_table(path), True
        if head[:6] == b"ARROW1":
            with pa.memory_map(str(path)) as source:
                return ipc.open_file(source).read_all(), False
        if head[:4] == b"\xff\xff\xff\xff":
            with pa.memory_map(str(path)) as source:
                return ipc.open_stream(source).read_all(), False
    except (pa.ArrowException, OSError) as exc:
        raise ApiProblem(400, "RemoteError", f"the part file is truncated or corrupt: {exc}") from exc
    raise ApiProblem(
        400, "RemoteError",
        f"the body is not a Parquet or Arrow IPC file (it starts with {head!r}); send Parquet "
        "(application/vnd.apache.parquet) or Arrow IPC (application/vnd.apache.arrow.stream or .file)",
    )


def check_part(table: pa.Table, key: PartKey, task: str, run_id: str, rank: int, rows: int | None) -> None:
    """Raise TraceValidationError unless ``table`` is a part of ``key`` made by ``run_id``/``rank``."""
    if rows is not None and table.num_rows != rows:
        raise TraceValidationError(f"the part has {table.num_rows} rows; the client sent rows={rows}")
    if table.num_rows == 0:
        raise TraceValidationError("the part has no rows")
    get_task(task).schema.check(table)
    expected = {
        "model_name": key.model_name, "version_name": key.version_name, "dataset_type": key.dataset_type,
        "epoch": key.epoch, "run_id": run_id, "rank": rank,
    }
    for column, value in expected.items():
        if not pc.all(pc.equal(table.column(column), pa.scalar(value, table.schema.field(column).type))).as_py():
            found = pc.unique(table.column(column)).to_pylist()[:5]
            raise TraceValidationError(
                f"column {column!r} holds {found}, but the part was sent for {column}={value!r}"
            )
