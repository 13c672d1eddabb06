"""The background writer: a bounded queue of batches turned into atomically written part files."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa

from ml_debugger.core.schema import RowContext, common_columns
from ml_debugger.exceptions import WriterError
from ml_debugger.store.base import PartInfo, PartKey, TraceStore

logger = logging.getLogger(__name__)


class TraceBatch(Protocol):
    """What any task's batch offers the writer (see ``ClassificationBatch``)."""

    input_ids: np.ndarray
    input_hashes: np.ndarray

    def __len__(self) -> int: ...

    @property
    def schema_key(self) -> tuple: ...

    @classmethod
    def columns(cls, batches: list) -> dict[str, pa.Array | pa.ChunkedArray]: ...


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()
_BufferKey = tuple[PartKey, tuple]


class PartWriter:
    """Turns recorded batches into part files on a daemon thread.

    ``put`` blocks only when ``max_queued_batches`` are waiting (back-pressure). Buffered rows of a
    partition are written as one part when they reach ``rows_per_part``, when they have waited
    ``flush_interval`` seconds, and on ``flush``. The first write error stops the writer; it is
    raised by the next ``put`` or ``flush`` as :class:`WriterError`.
    """

    def __init__(
        self,
        store: TraceStore,
        *,
        run_id: str,
        rank: int,
        rows_per_part: int = 16384,
        flush_interval: float = 5.0,
        max_queued_batches: int = 64,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._rank = rank
        self._rows_per_part = rows_per_part
        self._flush_interval = flush_interval
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued_batches)
        self._buffers: dict[_BufferKey, list[tuple[RowContext, TraceBatch]]] = defaultdict(list)
        self._buffered_rows: dict[_BufferKey, int] = defaultdict(int)
        self._buffered_since: dict[_BufferKey, float] = {}
        self._parts: list[PartInfo] = []
        self._parts_lock = threading.Lock()
        self._sequence = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"ml-debugger-writer-{run_id}", daemon=True)
        self._thread.start()

    def put(self, key: PartKey, context: RowContext, batch: TraceBatch) -> None:
        """Queue a batch for writing; blocks while the queue is full."""
        self._raise_if_failed()
        if self._closed:
            raise WriterError("this writer is closed; create a new tracer to record more")
        self._queue.put((key, context, batch))

    def flush(self) -> None:
        """Return once every batch queued so far is in a part file (or raise WriterError)."""
        self._raise_if_failed()
        if self._closed:
            return
        request = _Flush()
        self._queue.put(request)
        while not request.done.wait(timeout=0.5):
            if not self._thread.is_alive():
                break
        self._raise_if_failed()

    def take_parts(self, epochs: set[int] | None = None) -> list[PartInfo]:
        """Remove and return the written parts of ``epochs`` (all when ``None``)."""
        with self._parts_lock:
            taken = [p for p in self._parts if epochs is None or p.key.epoch in epochs]
            self._parts = [p for p in self._parts if p not in taken]
        return taken

    def close(self) -> None:
        """Write what is buffered and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"the trace writer failed and stopped: {self._error}") from self._error

    def _run(self) -> None:
        poll = max(0.05, self._flush_interval / 4)
        while True:
            try:
                item = self._queue.get(timeout=poll)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._guarded(self._write_all)
                return
            if isinstance(item, _Flush):
                self._guarded(self._write_all)
                item.done.set()
            elif item is not None:
                self._guarded(self._add, *item)
            self._guarded(self._write_stale)

    def _guarded(self, action, *args) -> None:
        if self._error is not None:
            return  # the writer has failed: drain the queue so producers never block forever
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 - kept and re-raised in the caller's thread
            logger.error("ml-debugger trace writer failed", exc_info=True)
            self._error = exc

    def _add(self, key: PartKey, context: RowContext, batch: TraceBatch) -> None:
        buffer_key = (key, batch.schema_key)
        self._buffers[buffer_key].append((context, batch))
        self._buffered_rows[buffer_key] += len(batch)
        self._buffered_since.setdefault(buffer_key, time.monotonic())
        if self._buffered_rows[buffer_key] >= self._rows_per_part:
            self._write(buffer_key)

    def _write_stale(self) -> None:
        now = time.monotonic()
        for buffer_key, since in list(self._buffered_since.items()):
            if now - since >= self._flush_interval:
                self._write(buffer_key)

    def _write_all(self) -> None:
        for buffer_key in list(self._buffers):
            self._write(buffer_key)

    def _write(self, buffer_key: _BufferKey) -> None:
        entries = self._buffers.pop(buffer_key, [])
        self._buffered_rows.pop(buffer_key, None)
        self._buffered_since.pop(buffer_key, None)
        if not entries:
            return
        try:
            info = self._store.write_part(buffer_key[0], _table(entries), self._next_part_name(), self._run_id, self._rank)
        except BaseException:
            self._buffers[buffer_key] = entries  # keep the rows: nothing recorded is dropped by a failed write
            raise
        with self._parts_lock:
            self._parts.append(info)

    def _next_part_name(self) -> str:
        self._sequence += 1
        return f"part-{self._run_id}-r{self._rank}-{self._sequence:06d}"


def _table(entries: list[tuple[RowContext, TraceBatch]]) -> pa.Table:
    """One Arrow table of buffered batches: their rows in order, common columns first."""
    contexts = [context for context, _ in entries]
    batches = [batch for _, batch in entries]
    columns = common_columns(
        contexts, [len(b) for b in batches],
        np.concatenate([b.input_ids for b in batches]), np.concatenate([b.input_hashes for b in batches]),
    )
    columns.update(type(batches[0]).columns(batches))
    return pa.table(columns)
