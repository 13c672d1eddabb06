"""Storing a received part: check it, then link it into place so that the first complete body wins.

A part's name is written once. An upload under a stored name is answered from the stored file: the
same body (by SHA-256) is a 200, so a retried upload is idempotent; a different body is a 409. When
several uploads of one new name race, each is checked and linked with ``os.link``, which fails for
all but the first; the others are then compared with the winner like any later upload.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ml_debugger.exceptions import StoreError
from ml_debugger.server.context import ServerContext
from ml_debugger.server.errors import ApiProblem
from ml_debugger.server.ipc_check import check_ipc
from ml_debugger.server.part_check import ExpectedPart, PartLimits, check_parquet
from ml_debugger.server.uploads import IPC_FILE, PARQUET, ReceivedBody, body_format, file_sha256, new_file
from ml_debugger.store.base import PartInfo, PartKey
from ml_debugger.store.local import PARQUET_COMPRESSION

BODY_SHA256_KEY = b"ml_debugger.body_sha256"
"""Parquet metadata of a part converted from an Arrow IPC body: that body's SHA-256, to recognise a retry."""


def _stored_digests(path: Path) -> set[str]:
    digests = {file_sha256(path)}
    metadata = pq.ParquetFile(path).metadata.metadata or {}
    if BODY_SHA256_KEY in metadata:
        digests.add(metadata[BODY_SHA256_KEY].decode())
    return digests


def _answer_from_stored(ctx: ServerContext, key: PartKey, part_name: str, body: ReceivedBody) -> PartInfo:
    """The stored part if ``body`` is the one it was stored from (its uncommitted grace starts again); else 409."""
    with ctx.part_lock:  # not removed as uncommitted while it is looked at
        stored = ctx.store.stored_part(key, part_name)
        if stored is None:
            raise ApiProblem(503, "ServerUnavailableError", f"part {part_name} changed while it was uploaded; retry")
        path = ctx.store.root / stored.path
        try:
            same = body.sha256 in _stored_digests(path)
            if same:
                os.utime(path)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot read the stored part {path}: {exc}") from exc
    if not same:
        raise ApiProblem(
            409, "StoreError",
            f"part {stored.path} is already stored with other contents (SHA-256 {body.sha256} differs); "
            "a part name is written once: upload different rows under a new part name",
        )
    return stored


def _as_parquet(table: pa.Table, directory: Path, body_sha256: str) -> Path:
    fd, path = new_file(directory, ".parquet")
    os.close(fd)
    metadata = {**(table.schema.metadata or {}), BODY_SHA256_KEY: body_sha256.encode()}
    try:
        pq.write_table(table.replace_schema_metadata(metadata), path, compression=PARQUET_COMPRESSION)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def store_upload(
    ctx: ServerContext, key: PartKey, part_name: str, expected: ExpectedPart, body: ReceivedBody
) -> tuple[PartInfo, bool]:
    """Store the received part unless its name is taken; ``(part, newly stored)`` (see the module doc)."""
    if ctx.store.stored_part(key, part_name) is not None:
        return _answer_from_stored(ctx, key, part_name, body), False
    config = ctx.config
    limits = PartLimits(max_rows=config.max_part_rows, max_decoded_bytes=config.max_decoded_bytes)
    with ctx.checks:  # at most max_checks parts are decoded at once
        kind = body_format(body.path)
        if kind == PARQUET:
            check_parquet(body.path, expected, limits)
            candidate = body.path
        else:
            table = check_ipc(body.path, expected, limits, file_format=kind == IPC_FILE)
            candidate = _as_parquet(table, ctx.uploads, body.sha256)
    try:
        info = ctx.store.adopt_part(key, candidate, part_name)
    finally:
        if candidate != body.path:
            candidate.unlink(missing_ok=True)
    if info is None:  # another upload of this name was linked first
        return _answer_from_stored(ctx, key, part_name, body), False
    return info, True
