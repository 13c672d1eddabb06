"""Receiving part files: stream the body to a temporary file (size- and stall-limited) and name its format.

A body is a Parquet file or an Arrow IPC file or stream, recognised by its magic bytes. The declared
size and SHA-256 (``X-Content-SHA256``) are checked while it arrives; its contents are checked by
``part_check`` / ``ipc_check`` and it is stored by ``part_store``. Files are created with the
process umask (like the catalog), so other users' DuckDB or Polars can read the store.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from ml_debugger.server.bodies import DISCARD_FACTOR, BodyLimits, body_chunks, discard, too_large
from ml_debugger.server.errors import ApiProblem

PARQUET, IPC_FILE, IPC_STREAM = "parquet", "arrow-file", "arrow-stream"


@dataclass(frozen=True)
class ReceivedBody:
    """A request body saved in a temporary file, with its SHA-256."""

    path: Path
    sha256: str
    size: int


def new_file(directory: Path, suffix: str) -> tuple[int, Path]:
    """A new, empty file in ``directory`` opened for writing, with the permissions the umask gives."""
    while True:
        path = directory / f"{secrets.token_hex(8)}{suffix}"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def receive_body(request: Request, directory: Path, max_bytes: int, limits: BodyLimits) -> ReceivedBody:
    """Stream the request body into a new file in ``directory``; 413 past ``max_bytes``, 400 on a bad checksum."""
    what = "the part file"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        await discard(request.receive, limits, DISCARD_FACTOR * max_bytes)
        raise too_large(what, declared, max_bytes)
    fd, path = new_file(directory, ".upload")
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in body_chunks(request.receive, limits):
                size += len(chunk)
                if size > max_bytes:
                    await discard(request.receive, limits, DISCARD_FACTOR * max_bytes)
                    raise too_large(what, f"more than {max_bytes}", max_bytes)
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
    return ReceivedBody(path, digest.hexdigest(), size)


def body_format(path: Path) -> str:
    """PARQUET, IPC_FILE or IPC_STREAM from the file's magic bytes; 400 for anything else."""
    with path.open("rb") as f:
        head = f.read(8)
    if head[:4] == b"PAR1":
        return PARQUET
    if head[:6] == b"ARROW1":
        return IPC_FILE
    if head[:4] == b"\xff\xff\xff\xff":
        return IPC_STREAM
    raise ApiProblem(
        400, "RemoteError",
        f"the body is not a Parquet or Arrow IPC file (it starts with {head!r}); send Parquet "
        "(application/vnd.apache.parquet) or Arrow IPC (application/vnd.apache.arrow.stream or .file)",
    )
