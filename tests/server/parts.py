"""Real trace part files (written by the engine into a scratch LocalStore) and upload helpers."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ml_debugger.core import TraceSession
from ml_debugger.store import LocalStore
from ml_debugger.tasks.classification import make_classification_batch


def make_batch(ids: np.ndarray, n_classes: int = 4, features: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return make_classification_batch(
        rng.normal(size=(len(ids), n_classes)), rng.integers(0, n_classes, len(ids)),
        input_hashes=np.array([f"h{i}" for i in ids], dtype=object), input_ids=ids,
        features=rng.normal(size=(len(ids), features)).astype(np.float32),
    )


@dataclass(frozen=True)
class Part:
    """One part file as the engine wrote it, with its upload identity."""

    table: pa.Table
    parquet: bytes
    part_name: str
    run_id: str
    rank: int
    dataset_type: str
    epoch: int

    def arrow_stream(self) -> bytes:
        sink = io.BytesIO()
        with ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return sink.getvalue()

    def arrow_file(self) -> bytes:
        sink = io.BytesIO()
        with ipc.new_file(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return sink.getvalue()


def real_part(scratch: Path, model: str, version: str, rows: int = 40, *, epoch: int = 0,
              dataset_type: str = "val", start: int = 0) -> Part:
    """Trace ``rows`` rows with a real TraceSession into ``scratch`` and return the part it wrote."""
    store = LocalStore(scratch)
    before = set(scratch.rglob("*.parquet"))
    session = TraceSession(model, version, "classification", store=store, rows_per_part=10**6)
    session.record(make_batch(np.arange(start, start + rows)), dataset_type=dataset_type, n_epoch=epoch)
    session.flush()
    (path,) = set(scratch.rglob("*.parquet")) - before
    return Part(pq.read_table(path), path.read_bytes(), path.stem, session.run_id, session.rank, dataset_type, epoch)


def put_part(client: httpx.Client, model: str, version: str, part: Part, body: bytes | None = None,
             **params) -> httpx.Response:
    """PUT a part (its Parquet bytes unless ``body``) to the server."""
    url = f"/api/v1/models/{model}/versions/{version}/parts/{part.dataset_type}/{part.epoch}/{part.part_name}"
    query = {"run_id": part.run_id, "rank": part.rank, **params}
    return client.put(url, content=part.parquet if body is None else body, params=query)


def commit(client: httpx.Client, model: str, version: str, *parts: Part) -> httpx.Response:
    refs = [{"dataset_type": p.dataset_type, "epoch": p.epoch, "part_name": p.part_name, "run_id": p.run_id,
             "rank": p.rank} for p in parts]
    return client.post(f"/api/v1/models/{model}/versions/{version}/commits", json={"parts": refs})
